/**
 * The search's role calls, each bound to the candidate it concerns: its result is written onto that candidate, so
 * the order in which calls finish never matters. A failed call is recorded by the call runner; what it means for
 * the search is decided here: a failed image is not made, a failed verification ranks last, a failed reflection
 * skips the chain's round, a failed refinement keeps the current prompt.
 */
import type { PromptRefiner, Reflector, RoleSet } from '../core/roles.js';
import type { Candidate, Image, PromptMeta, Reflection } from '../core/types.js';
import { CallFailed, type CallRunner } from './calls.js';
import type { SearchIO } from './io.js';

export class SearchSteps {
  /** every image made (or replayed), in the order they were made */
  readonly made: Candidate[] = [];
  private readonly images = new Map<string, Image>();

  constructor(
    private readonly calls: CallRunner,
    private readonly io: SearchIO,
    private readonly roles: RoleSet,
    /** the original prompt: verifier, reflector and refiner always judge against it */
    private readonly prompt: string,
    private readonly meta: PromptMeta | undefined,
    private readonly size: number | undefined,
  ) {}

  image(id: string): Image {
    return this.images.get(id)!;
  }

  /** Round 0's image of `c` (or a `noise+prompt` chain's regenerated one), from its prompt and seed. */
  generate(c: Candidate, inputIds: string[] = []): Promise<boolean> {
    const { generator } = this.roles;
    return this.makeImage(c, inputIds, (s) => generator.generate({ prompt: c.prompt, seed: c.seed, size: this.size }, { signal: s }));
  }

  /** `c`, the corrector's edit of its parent `head` with the reflection `c` carries. */
  correct(c: Candidate, head: Candidate): Promise<boolean> {
    const corrector = this.roles.corrector!;
    const source = this.image(head.id);
    const req = { image: source, prompt: c.prompt, reflection: c.reflection!, seed: c.seed, size: this.size };
    return this.makeImage(c, [head.id], (s) => corrector.correct(req, { signal: s }));
  }

  private async makeImage(c: Candidate, inputIds: string[], make: (signal: AbortSignal | undefined) => Promise<Image>): Promise<boolean> {
    const role = c.origin === 'generate' ? 'generator' : 'corrector';
    const image = await this.calls.attempt(
      { key: `${c.origin}:${c.id}`, role, backend: this.roles[role]!, candidateId: c.id, inputIds, prompt: c.prompt, seed: c.seed },
      make,
      async (img) => {
        await this.io.saveImage(c.id, img);
        return { outputId: c.id, ...(c.reflection ? { reflection: c.reflection } : {}) };
      },
      () => this.io.loadImage(c.id),
    );
    if (image instanceof CallFailed) return false;
    this.images.set(c.id, image);
    this.made.push(c);
    return true;
  }

  async verify(c: Candidate): Promise<void> {
    const { verifier } = this.roles;
    const evaluation = await this.calls.attempt(
      { key: `verify:${c.id}`, role: 'verifier', backend: verifier, candidateId: c.id, inputIds: [c.id] },
      (s) => verifier.verify({ image: this.image(c.id), prompt: this.prompt, meta: this.meta }, { signal: s }),
      async (evaluation) => ({ evaluation }),
      async (e) => e.evaluation!,
    );
    if (evaluation instanceof CallFailed) c.verifyError = evaluation.message;
    else c.evaluation = evaluation;
  }

  /** The reflection on `head`; undefined when the call failed (nothing to correct with this round). */
  async reflect(head: Candidate, reflector: Reflector, previous: Reflection | undefined): Promise<Reflection | undefined> {
    const req = {
      image: this.image(head.id),
      prompt: this.prompt,
      currentPrompt: head.prompt,
      ...(head.evaluation ? { evaluation: head.evaluation } : {}),
      ...(previous ? { previousReflection: previous } : {}),
    };
    const reflection = await this.calls.attempt(
      { key: `reflect:${head.id}`, role: 'reflector', backend: reflector, candidateId: head.id, inputIds: [head.id] },
      (s) => reflector.reflect(req, { signal: s }),
      async (reflection) => ({ reflection }),
      async (e) => e.reflection!,
    );
    if (reflection instanceof CallFailed) return undefined;
    return (head.reflectionOut = reflection);
  }

  /** The prompt for the next image of `head`'s chain: refined, or the current one when refinement fails or is off. */
  async refine(head: Candidate, refiner: PromptRefiner | undefined, reflection?: Reflection): Promise<string> {
    if (!refiner) return head.prompt;
    const req = {
      prompt: this.prompt,
      currentPrompt: head.prompt,
      image: this.image(head.id),
      ...(head.evaluation ? { evaluation: head.evaluation } : {}),
      ...(reflection ? { reflection } : {}),
    };
    const refined = await this.calls.attempt(
      { key: `refine:${head.id}`, role: 'refiner', backend: refiner, candidateId: head.id, inputIds: [head.id] },
      (s) => refiner.refine(req, { signal: s }),
      async (refinedPrompt) => ({ refinedPrompt }),
      async (e) => e.refinedPrompt!,
    );
    if (refined instanceof CallFailed) return head.prompt;
    return (head.refinedPrompt = refined);
  }
}
