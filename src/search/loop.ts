/**
 * The ReflectionFlow search: a noise pool, top-`width` chain heads, then `depth` rounds of
 * reflect → refine → correct → verify per chain (strategy `reflection`), refine → regenerate → verify
 * (`noise+prompt`), or nothing but the pool (`noise`, best-of-N). The final image is the best over all images.
 *
 * Every result is written onto its own candidate by the call that made it, so the order in which calls finish
 * never matters.
 */
import type { RoleSet } from '../core/roles.js';
import { UserError } from '../core/errors.js';
import { requiredRoles } from '../core/strategies.js';
import type { Candidate, PromptMeta, Reflection, SearchParams, SearchResult } from '../core/types.js';
import { CallRunner, type CallListener } from './calls.js';
import type { CallEvent, SearchIO } from './io.js';
import { makePlan, planned, type SearchPlan } from './plan.js';
import { deriveSeed } from './seeds.js';
import { bestOf, rank } from './select.js';
import { SearchSteps } from './steps.js';

/** What a search is: the prompt, the parameters, the roles and the image size. */
export interface SearchSetup {
  prompt: string;
  meta?: PromptMeta;
  params: SearchParams;
  roles: RoleSet;
  size?: number;
}

/** Where a search keeps what it makes, what stops it, and who hears of each call. */
export interface SearchRun {
  io: SearchIO;
  signal?: AbortSignal;
  onCall?: CallListener;
}

export interface SearchInput extends SearchSetup, SearchRun {}

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

declare const checked: unique symbol;

/** A search its roles said they can serve: made by `checkSearch` only, so a caller that checked early (before a
 * run directory exists, or every prompt of a batch before the first) does not check again. */
export interface CheckedSearch {
  readonly setup: SearchSetup;
  readonly plan: SearchPlan;
  readonly [checked]: true;
}

/**
 * Refuse, before any call, a search that cannot run: a role the strategy needs is missing, or a role can never
 * handle the prompt or make images of the size.
 */
export function checkSearch(setup: SearchSetup): CheckedSearch {
  const { prompt, params, roles } = setup;
  for (const role of requiredRoles(params.strategy)) {
    if (!roles[role]) throw new UserError(`strategy '${params.strategy}' needs a ${role}, and none is configured`);
  }
  checkPrompt(roles, prompt);
  checkSize(roles, setup.size);
  return { setup, plan: makePlan(params) } as CheckedSearch;
}

export async function search(input: SearchInput): Promise<SearchOutcome> {
  return runChecked(checkSearch(input), input);
}

/**
 * The method: a pool of `samples` seeds, generated and verified; the best `width` become chain heads; then `depth`
 * rounds in which every chain's head gets its next image (reflect → refine → correct, or refine → regenerate) and
 * the image its score; the answer is the best image of all. With `stopAt`, the first image (in plan order) whose
 * score reaches it ends the search after its wave or round.
 */
export async function runChecked({ setup, plan }: CheckedSearch, run: SearchRun): Promise<SearchOutcome> {
  const { prompt, params, roles } = setup;
  const calls = new CallRunner(run.io, run.signal, run.onCall);
  const steps = new SearchSteps(calls, run.io, roles, prompt, setup.meta, setup.size);
  const passes = (c: Candidate | undefined): boolean => params.stopAt !== undefined && c?.evaluation !== undefined && c.evaluation.score >= params.stopAt;

  const pool = poolOf(prompt, params.seed, plan.pool);
  let stoppedAt = await makePool(steps, pool, params.stopAt === undefined ? plan.pool : Math.max(1, params.wave ?? DEFAULT_WAVE), passes);
  const candidates = steps.made;
  sortByPlan(candidates, pool);

  const heads = params.strategy === 'noise' || stoppedAt ? [] : rank(candidates).slice(0, plan.width);
  const chains = heads.map((head, i) => new Chain(i, head));
  for (let r = 1; r <= plan.depth && chains.length && !stoppedAt; r++) {
    const made = await Promise.all(chains.map((chain) => (planned(plan, r, chain.index) ? chain.step(r, setup, steps) : Promise.resolve(undefined))));
    stoppedAt = made.find(passes);
  }

  // completion order must not leak into the result
  sortByPlan(candidates, pool);
  const best = candidates.length ? bestOf(candidates) : null;
  return {
    candidates,
    chains: chains.map((chain) => ({ chain: chain.index, ids: chain.images.map((c) => c.id), bestId: bestOf(chain.images).id })),
    bestId: best ? best.id : null,
    imagesGenerated: candidates.length,
    budget: plan.budget,
    timePerRole: calls.timePerRole,
    busyPerRole: calls.busyPerRole,
    failures: calls.failures,
    usage: calls.usage,
    ...(stoppedAt ? { stoppedAt: stoppedAt.id } : {}),
  };
}

/** Round 0's candidates: one per seed of the pool, from the original prompt. */
function poolOf(prompt: string, runSeed: number, size: number): Candidate[] {
  return Array.from({ length: size }, (_, i) => {
    const seed = deriveSeed(runSeed, 0, i);
    return { id: `r0-i${pad(i)}-s${seed}`, round: 0, chain: null, seed, parentId: null, prompt, origin: 'generate' };
  });
}

/**
 * Generate and verify the pool, `waveSize` images at a time; the first image of a wave (in plan order) that passes
 * stops it: the same config and seed stop at the same image whatever order calls finish in.
 */
async function makePool(steps: SearchSteps, pool: Candidate[], waveSize: number, passes: (c: Candidate) => boolean): Promise<Candidate | undefined> {
  for (let start = 0; start < pool.length; start += waveSize) {
    const wave = pool.slice(start, start + waveSize);
    await Promise.all(wave.map(async (c) => (await steps.generate(c)) && (await steps.verify(c))));
    const stoppedAt = wave.find(passes);
    if (stoppedAt) return stoppedAt;
  }
  return undefined;
}

/** One chain: its images so far, its head (what the next round starts from) and the reflection it last acted on. */
class Chain {
  readonly images: Candidate[];
  private head: Candidate;
  private previousReflection: Reflection | undefined;

  constructor(
    readonly index: number,
    head: Candidate,
  ) {
    head.chain = index;
    this.head = head;
    this.images = [head];
  }

  /** Round `r`: the chain's next image, verified; undefined when the round made none. */
  async step(r: number, { params, roles }: SearchSetup, steps: SearchSteps): Promise<Candidate | undefined> {
    const head = this.head;
    const seed = deriveSeed(params.seed, r, this.index);
    let child: Candidate;
    if (params.strategy === 'reflection') {
      const reflection = await steps.reflect(head, roles.reflector!, this.previousReflection);
      if (!reflection) return undefined; // nothing to correct with this round
      const nextPrompt = await steps.refine(head, roles.refiner, reflection);
      child = childOf(head, r, this.index, seed, nextPrompt, 'correct', reflection);
      const made = await steps.correct(child, head);
      this.previousReflection = reflection;
      if (!made) return undefined;
    } else {
      const nextPrompt = await steps.refine(head, roles.refiner);
      child = childOf(head, r, this.index, seed, nextPrompt, 'generate');
      if (!(await steps.generate(child, [head.id]))) return undefined;
    }
    await steps.verify(child);
    this.images.push(child);
    if (params.chainHead === 'latest' || bestOf([head, child]) === child) this.head = child;
    return child;
  }
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
