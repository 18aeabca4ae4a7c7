/**
 * What the embedded roles accept, from the model cards (`<name>.json`) alone: a run's prompt and size are checked
 * before onnxruntime and the sessions load, so that a refused prompt costs a fraction of a second. The roles make
 * the same checks through these functions once loaded.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../../core/errors.js';
import type { Role } from '../../core/strategies.js';
import { layoutText } from '../../shapeworld/layout.js';
import { parsePrompt } from '../../shapeworld/prompts.js';
import type { InputCheck } from '../registry.js';
import { MODELS_DIR } from './files.js';
import { encodePrompt } from './spec.js';
import { Tokenizer } from './tokenizer.js';

/**
 * The flow models' (generator, corrector) vocabulary: their counts first (the parser reads counts they never
 * learnt), then ShapeWorld's parser (they learnt its prompts), then the tokenizer's words.
 */
export function checkFlowPrompt(tokenizer: Tokenizer, prompt: string): void {
  tokenizer.checkCounts(prompt);
  parsePrompt(prompt);
  tokenizer.encode(prompt);
}

/** The embedded models make images of their one size; asking for another is refused, never silently ignored. */
export function fixedSize(role: string, own: number, asked: number): void {
  if (asked !== own) throw new UserError(`the embedded ${role} makes ${own}×${own} images only; drop --size (or "size" in the config) or pass ${own}`);
}

/** A layout prompt as long as the refiner writes (four placed, coloured objects). */
const LONGEST_LAYOUT = layoutText([
  { shape: 'triangle', color: 'yellow', count: 1, region: 'bottom right' },
  { shape: 'diamond', color: 'orange', count: 1, region: 'bottom left' },
  { shape: 'square', color: 'purple', count: 1, region: 'top right' },
  { shape: 'cross', color: 'white', count: 1, region: 'top left' },
]);

/** Can a generator with this tokenizer read the refiner's layout wording (its vocabulary and length cover the longest prompt)? */
export function readsLayouts(tokenizer: Tokenizer): boolean {
  try {
    tokenizer.encode(LONGEST_LAYOUT);
    return true;
  } catch {
    return false;
  }
}

export function modelsDirOf(options: Record<string, unknown>): string {
  return typeof options.modelsDir === 'string' ? path.resolve(options.modelsDir) : MODELS_DIR;
}

interface Card {
  size: number;
  maxTokens: number;
  vocab: string[];
}

/** A flow model's card, or null when it is missing or unreadable (loading the model then says what is wrong). */
function readCard(dir: string, name: string): Card | null {
  try {
    const card = JSON.parse(readFileSync(path.join(dir, `${name}.json`), 'utf8')) as Partial<Card>;
    if (typeof card.size !== 'number' || typeof card.maxTokens !== 'number' || !Array.isArray(card.vocab)) return null;
    return card as Card;
  } catch {
    return null;
  }
}

/**
 * The checks of the given embedded roles, in the order the search asks its roles (generator, verifier, reflector,
 * refiner, corrector), so that a prompt is refused with the same message before and after the models load. The
 * refiner and corrector exist only beside a generator that reads layouts (backend.ts); for them nothing is checked
 * otherwise.
 */
export function embeddedInputCheck(options: Record<string, unknown>, roles: readonly Role[]): InputCheck {
  const dir = modelsDirOf(options);
  const generator = readCard(dir, 'generator');
  const genTokens = generator ? new Tokenizer(generator.vocab, generator.maxTokens) : null;
  const layouts = genTokens !== null && readsLayouts(genTokens);
  const corrector = layouts && existsSync(path.join(dir, 'corrector.onnx')) ? readCard(dir, 'corrector') : null;
  const corrTokens = corrector ? new Tokenizer(corrector.vocab, corrector.maxTokens) : null;
  const has = (role: Role) => roles.includes(role);
  return {
    prompt(prompt) {
      if (has('generator') && genTokens) checkFlowPrompt(genTokens, prompt);
      if (has('verifier') || has('reflector') || (has('refiner') && layouts)) encodePrompt(prompt);
      if (has('corrector') && corrTokens) checkFlowPrompt(corrTokens, prompt);
    },
    size(size) {
      if (has('generator') && generator) fixedSize('generator', generator.size, size);
      if (has('corrector') && corrector) fixedSize('corrector', corrector.size, size);
    },
  };
}
