/**
 * The ReflectionFlow search: a noise pool, top-`width` chain heads, then `depth` rounds of
 * reflect → refine → correct → verify per chain (strategy `reflection`), refine → regenerate → verify
 * (`noise+prompt`), or nothing but the pool (`noise`, best-of-N). The final image is the best over all images.
 *
 * Every result is written onto its own candidate by the call that made it, so the order in which calls finish
 * never matters.
 */
import type { Corrector, PromptRefiner, Reflector, RoleSet } from '../core/roles.js';
import { UserError } from '../core/errors.js';
import { requiredRoles } from '../core/strategies.js';
import type {
  Candidate,
  ChainSummary,
  Evaluation,
  Image,
  PromptMeta,
  Reflection,
  SearchParams,
  SearchResult,
} from '../core/types.js';
import { CallFailed, CallRunner, type CallListener } from './calls.js';
import type { SearchIO } from './io.js';
import type { CallEvent } from './io.js';
import { makePlan, planned } from './plan.js';
import { deriveSeed } from './seeds.js';
import { bestOf, rank } from './select.js';

export interface SearchInput {
  prompt: string;
  meta?: PromptMeta;
  params: SearchParams;
  roles: RoleSet;
  io: SearchIO;
  signal?: AbortSignal;
  onCall?: CallListener;
  size?: number;
}

/** Pool images generated at once between two checks of `stopAt` (when it is set). */
export const DEFAULT_WAVE = 4;

export interface SearchOutcome extends SearchResult {
  timePerRole: CallRunner['timePerRole'];
  /** time each role had a call in flight in this attempt (never more than wall time) */
  busyPerRole: CallRunner['busyPerRole'];
  /** calls that failed in this attempt (the search went on without them); a resume makes them again */
  failures: CallEvent[];
  /** what each role spent, replayed calls counted as made */
  usage: CallRunner['usage'];
}

export { requiredRoles } from '../core/strategies.js';

export async function search(input: SearchInput): Promise<SearchOutcome> {
  const { prompt, params, roles, io } = input;
  for (const role of requiredRoles(params.strategy)) {
    if (!roles[role]) throw new UserError(`strategy '${params.strategy}' needs a ${role}, and none is configured`);
  }
  checkPrompt(roles, prompt);
  checkSize(roles, input.size);
  const plan = makePlan(params);
  const calls = new CallRunner(io, input.signal, input.onCall);
  const candidates: Candidate[] = [];
  const images = new Map<string, Image>();
  let imagesGenerated = 0;

  // ---- calls, each bound to the candidate it concerns ----

  const makeImage = async (c: Candidate, make: (signal: AbortSignal | undefined) => Promise<Image>, inputIds: string[]): Promise<boolean> => {
    const role = c.origin === 'generate' ? 'generator' : 'corrector';
    const backend = role === 'generator' ? roles.generator : roles.corrector!;
    try {
      const image = await calls.run(
        { key: `${c.origin}:${c.id}`, role, backend, candidateId: c.id, inputIds, prompt: c.prompt, seed: c.seed },
        (s) => make(s),
        async (img) => {
          await io.saveImage(c.id, img);
          return { outputId: c.id, ...(c.reflection ? { reflection: c.reflection } : {}) };
        },
        () => io.loadImage(c.id),
      );
      images.set(c.id, image);
      candidates.push(c);
      imagesGenerated++;
      return true;
    } catch (err) {
      if (err instanceof CallFailed) return false;
      throw err;
    }
  };

  const verify = async (c: Candidate): Promise<void> => {
    try {
      c.evaluation = await calls.run<Evaluation>(
        { key: `verify:${c.id}`, role: 'verifier', backend: roles.verifier, candidateId: c.id, inputIds: [c.id] },
        (s) => roles.verifier.verify({ image: images.get(c.id)!, prompt, meta: input.meta }, { signal: s }),
        async (evaluation) => ({ evaluation }),
        async (e) => e.evaluation!,
      );
    } catch (err) {
      if (!(err instanceof CallFailed)) throw err;
      c.verifyError = err.message; // ranks last; the search goes on
    }
  };

  const reflect = async (head: Candidate, reflector: Reflector, previous?: Reflection): Promise<Reflection | undefined> => {
    try {
      head.reflectionOut = await calls.run<Reflection>(
        { key: `reflect:${head.id}`, role: 'reflector', backend: reflector, candidateId: head.id, inputIds: [head.id] },
        (s) =>
          reflector.reflect(
            {
              image: images.get(head.id)!,
              prompt,
              currentPrompt: head.prompt,
              ...(head.evaluation ? { evaluation: head.evaluation } : {}),
              ...(previous ? { previousReflection: previous } : {}),
            },
            { signal: s },
          ),
        async (reflection) => ({ reflection }),
        async (e) => e.reflection!,
      );
      return head.reflectionOut;
    } catch (err) {
      if (err instanceof CallFailed) return undefined;
      throw err;
    }
  };

  /** The refined prompt for the next image of a chain; the current prompt when refinement fails or is off. */
  const refine = async (head: Candidate, refiner: PromptRefiner | undefined, reflection?: Reflection): Promise<string> => {
    if (!refiner) return head.prompt;
    try {
      head.refinedPrompt = await calls.run<string>(
        { key: `refine:${head.id}`, role: 'refiner', backend: refiner, candidateId: head.id, inputIds: [head.id] },
        (s) =>
          refiner.refine(
            {
              prompt,
              currentPrompt: head.prompt,
              image: images.get(head.id)!,
              ...(head.evaluation ? { evaluation: head.evaluation } : {}),
              ...(reflection ? { reflection } : {}),
            },
            { signal: s },
          ),
        async (refinedPrompt) => ({ refinedPrompt }),
        async (e) => e.refinedPrompt!,
      );
      return head.refinedPrompt;
    } catch (err) {
      if (err instanceof CallFailed) return head.prompt;
      throw err;
    }
  };

  // ---- round 0: the noise pool, in waves when the search may stop early ----

  const pool: Candidate[] = Array.from({ length: plan.pool }, (_, i) => {
    const seed = deriveSeed(params.seed, 0, i);
    return { id: `r0-i${pad(i)}-s${seed}`, round: 0, chain: null, seed, parentId: null, prompt, origin: 'generate' };
  });
  // the first image (in plan order, checked after each wave or round) whose score reaches `stopAt` ends the search:
  // the same config and seed stop at the same image whatever order calls finish in
  const passes = (c: Candidate | undefined): boolean => params.stopAt !== undefined && c?.evaluation !== undefined && c.evaluation.score >= params.stopAt;
  let stoppedAt: Candidate | undefined;
  const waveSize = params.stopAt === undefined ? plan.pool : Math.max(1, params.wave ?? DEFAULT_WAVE);
  for (let start = 0; start < plan.pool && !stoppedAt; start += waveSize) {
    const wave = pool.slice(start, start + waveSize);
    await Promise.all(
      wave.map(async (c) => {
        const ok = await makeImage(c, (s) => roles.generator.generate({ prompt, seed: c.seed, size: input.size }, { signal: s }), []);
        if (ok) await verify(c);
      }),
    );
    stoppedAt = wave.find(passes);
  }
  sortByPlan(candidates, pool);

  // ---- chains: round by round, each round's steps of all chains at once ----

  const heads = params.strategy === 'noise' || stoppedAt ? [] : rank(candidates).slice(0, plan.width);
  const chains: Candidate[][] = heads.map((h, i) => {
    h.chain = i;
    return [h];
  });
  const state = chains.map((chain) => ({ head: chain[0]!, previousReflection: undefined as Reflection | undefined }));

  /** Round `r` of chain `i`: the new image, or undefined when the round made none. */
  const step = async (i: number, r: number): Promise<Candidate | undefined> => {
    const st = state[i]!;
    const head = st.head;
    const seed = deriveSeed(params.seed, r, i);
    let child: Candidate;
    let made: boolean;
    if (params.strategy === 'reflection') {
      const reflection = await reflect(head, roles.reflector!, st.previousReflection);
      if (!reflection) return undefined; // nothing to correct with this round
      const nextPrompt = await refine(head, roles.refiner, reflection);
      child = childOf(head, r, i, seed, nextPrompt, 'correct', reflection);
      const corrector: Corrector = roles.corrector!;
      const source = images.get(head.id)!;
      made = await makeImage(
        child,
        (s) => corrector.correct({ image: source, prompt: nextPrompt, reflection, seed, size: input.size }, { signal: s }),
        [head.id],
      );
      st.previousReflection = reflection;
    } else {
      const nextPrompt = await refine(head, roles.refiner);
      child = childOf(head, r, i, seed, nextPrompt, 'generate');
      made = await makeImage(child, (s) => roles.generator.generate({ prompt: nextPrompt, seed, size: input.size }, { signal: s }), [head.id]);
    }
    if (!made) return undefined;
    await verify(child);
    chains[i]!.push(child);
    if (params.chainHead === 'latest' || bestOf([head, child]) === child) st.head = child;
    return child;
  };
  for (let r = 1; r <= plan.depth && chains.length && !stoppedAt; r++) {
    const made = await Promise.all(chains.map((_, i) => (planned(plan, r, i) ? step(i, r) : Promise.resolve(undefined))));
    stoppedAt = made.find(passes);
  }

  // completion order must not leak into the result
  sortByPlan(candidates, pool);

  const chainSummaries: ChainSummary[] = chains.map((chain, i) => ({
    chain: i,
    ids: chain.map((c) => c.id),
    bestId: bestOf(chain).id,
  }));
  const best = candidates.length ? bestOf(candidates) : null;
  return {
    candidates,
    chains: chainSummaries,
    bestId: best ? best.id : null,
    imagesGenerated,
    budget: plan.budget,
    timePerRole: calls.timePerRole,
    busyPerRole: calls.busyPerRole,
    failures: calls.failures,
    usage: calls.usage,
    ...(stoppedAt ? { stoppedAt: stoppedAt.id } : {}),
  };
}

/** Ask every role that can tell whether it will be able to handle the prompt at all. */
export function checkPrompt(roles: RoleSet, prompt: string): void {
  for (const role of [roles.generator, roles.verifier, roles.reflector, roles.refiner, roles.corrector]) role?.checkPrompt?.(prompt);
}

/** Ask the image roles whether they can make images of `size` pixels per side (nothing to ask without a size). */
export function checkSize(roles: RoleSet, size: number | undefined): void {
  if (size === undefined) return;
  for (const role of [roles.generator, roles.corrector]) role?.checkSize?.(size);
}

function childOf(
  head: Candidate,
  round: number,
  chain: number,
  seed: number,
  prompt: string,
  origin: Candidate['origin'],
  reflection?: Reflection,
): Candidate {
  return {
    id: `r${round}-c${chain}-s${seed}`,
    round,
    chain,
    seed,
    parentId: head.id,
    prompt,
    origin,
    ...(reflection ? { reflection } : {}),
  };
}

/**
 * Plan order, whatever order calls finished in: pool images by index, then later images by round and chain (each
 * (round, chain) holds at most one image).
 */
function sortByPlan(candidates: Candidate[], pool: Candidate[]): void {
  const index = new Map(pool.map((c, i) => [c.id, i]));
  const key = (c: Candidate): [number, number, number] =>
    index.has(c.id) ? [0, index.get(c.id)!, 0] : [1, c.round, c.chain ?? 0];
  candidates.sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2];
  });
}

function pad(i: number): string {
  return String(i).padStart(3, '0');
}
