import { UserError } from '../../core/errors.js';
import { unknownWord } from '../../shapeworld/suggest.js';

const NUMBERS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'];

export const PAD = 0;
export const NULL_TOKEN = 1;

/**
 * The embedded models' tokenizer: lower-case words over a closed vocabulary (ShapeWorld's), padded to a fixed
 * length. An unknown word is the user's error, reported with the vocabulary, never silently dropped.
 */
export class Tokenizer {
  private readonly ids: Map<string, number>;

  constructor(
    readonly vocab: readonly string[],
    readonly maxTokens: number,
  ) {
    this.ids = new Map(vocab.map((w, i) => [w, i]));
  }

  words(text: string): string[] {
    return text
      .toLowerCase()
      .split(/[^a-z0-9]+/)
      .filter(Boolean);
  }

  /** Refuse counts the models never learnt ('five', '12'), saying how far they count. */
  checkCounts(text: string): void {
    const numbers = [...new Set(this.words(text).filter((w) => !this.ids.has(w) && (NUMBERS.includes(w) || /^\d+$/.test(w))))];
    if (!numbers.length) return;
    const most = Math.max(...this.vocab.filter((w) => /^\d+$/.test(w)).map(Number), 1);
    throw new UserError(`the embedded ShapeWorld models count up to ${most}; ${numbers.map((w) => `'${w}'`).join(', ')} is beyond them`);
  }

  encode(text: string): number[] {
    const words = this.words(text);
    if (words.length === 0) throw new UserError('the prompt has no words');
    const unknown = [...new Set(words.filter((w) => !this.ids.has(w)))];
    if (unknown.length) {
      const known = this.vocab.filter((w) => !w.startsWith('<'));
      this.checkCounts(text);
      throw new UserError(
        `the embedded ShapeWorld models do not know ${unknown.map((w) => unknownWord(w, known)).join(', ')}; their vocabulary: ${known.join(' ')}`,
      );
    }
    if (words.length > this.maxTokens) {
      throw new UserError(`the prompt has ${words.length} words; the embedded models read at most ${this.maxTokens}`);
    }
    const ids = words.map((w) => this.ids.get(w)!);
    while (ids.length < this.maxTokens) ids.push(PAD);
    return ids;
  }

  /** the unconditional prompt, for classifier-free guidance */
  nullTokens(): number[] {
    return [NULL_TOKEN, ...new Array<number>(this.maxTokens - 1).fill(PAD)];
  }
}
