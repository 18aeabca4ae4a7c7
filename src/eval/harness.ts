import pLimit from 'p-limit';
import type { RoleSet } from '../core/roles.js';
import type { Strategy } from '../core/types.js';
import type { PromptRecord } from '../config/prompts.js';
import { metaOf } from '../config/prompts.js';
import type { PromptMeta } from '../core/types.js';
import type { JudgeSummary } from './judge.js';
import { evalReport, type EvalReport, type EvalSample, type Judged } from './metrics.js';
import { search } from '../search/loop.js';
import { backendNames, costOf } from '../run.js';
import type { PriceTable } from '../core/prices.js';
import { paramsForBudget } from './budget.js';
import { SharedPoolIO } from './shared-pool.js';
import type { SearchIO } from '../search/io.js';

/**
 * A prompt of an eval: a GenEval record (with `include`), or a free-form prompt whose category is its tag (one
 * column of the table).
 */
export interface EvalRecord {
  prompt: string;
  tag: string;
  include?: unknown;
}

/** What the search's verifier may know of a prompt: a GenEval record's metadata; nothing for a free-form prompt. */
export function metaFor(record: EvalRecord): PromptMeta | undefined {
  return record.include !== undefined ? metaOf(record as PromptRecord) : undefined;
}

/**
 * A judge's verdict on one image. `score` is a backend judge's own score; `error` says the judge call failed (the
 * image is then left out of the accuracies, not counted wrong).
 */
export interface Verdict {
  correct: boolean;
  reason?: string;
  score?: number;
  error?: string;
}

/** Judges one final image against its prompt (the benchmark's detector or a judge backend, never the search's verifier). */
export type Judge = (png: Uint8Array, record: EvalRecord) => Promise<Verdict>;

/**
 * One line of the table: a strategy searched with a set of roles. A plain strategy uses `EvalOptions.roles`; an arm
 * may bring its own (e.g. the evaluator as verifier, `reflection@oracle`). Arms with different verifiers share the
 * pool's images, never its scores.
 */
export interface EvalArm {
  label: string;
  strategy: Strategy;
  roles?: RoleSet;
  /** names the verifier of `roles`: pool scores are shared only between arms with the same scope */
  verifierScope?: string;
  /** stop each search once an image's verifier score reaches this (the budget is then the cap) */
  stopAt?: number;
}

export interface EvalOptions {
  records: EvalRecord[];
  strategies: Array<Strategy | EvalArm>;
  budgets: number[];
  roles: RoleSet;
  judge: Judge;
  /** searches per prompt, each with its own run seed (a number, or per record) */
  seedsPerPrompt: number | ((record: EvalRecord) => number);
  width: number;
  seed: number;
  chainHead?: 'latest' | 'best';
  /** prompts searched at once (backend limits still apply) */
  jobs: number;
  signal?: AbortSignal;
  /**
   * Also judge every image of the largest noise pool and report the verifier's ROC-AUC against the judge
   * (how well the search's verifier ranks what the benchmark calls correct).
   */
  verifierAuc?: boolean;
  /** prices per backend name over the built-in ones, `null` for none (as run.json's cost estimate) */
  prices?: PriceTable;
  /** keep pool images on disk across eval runs (same generator identity ⇒ same images) */
  cache?: { dir: string; generatorKey: string };
  /** who judged and what the judge spent, for the report (a judge backend's calls, apart from the search's) */
  judgeSummary?: () => JudgeSummary;
  /** record each search's wall time and summed call time (the table then shows them per rung) */
  timing?: boolean;
  onResult?: (r: EvalSample, done: number, total: number) => void;
}


/**
 * The benchmark: every prompt × run seed × strategy × budget is one search; its final image is judged. Searches of
 * one prompt and seed share their noise pool (same seeds, same images), so a budget ladder costs little more than
 * its largest rung for `noise`.
 */
export async function runEval(opts: EvalOptions): Promise<EvalReport> {
  const started = performance.now();
  const seeds = typeof opts.seedsPerPrompt === 'number' ? () => opts.seedsPerPrompt as number : opts.seedsPerPrompt;
  const units = evalUnits(opts.records, seeds, opts.seed);
  const arms: EvalArm[] = opts.strategies.map((s) => (typeof s === 'string' ? { label: s, strategy: s } : s));
  const total = units.length * arms.length * opts.budgets.length;
  const limit = pLimit(Math.max(1, opts.jobs));
  let done = 0;
  const onResult = (s: EvalSample) => opts.onResult?.(s, ++done, total);
  // in plan order (unit by unit), whatever order the units finish in
  const results = await Promise.all(
    units.map(({ record, seed }) =>
      limit(() => {
        const pool = new SharedPoolIO(opts.cache ? { ...opts.cache, prompt: record.prompt } : undefined);
        return evalUnit({ ...opts, record, seed, arms, pool, onResult });
      }),
    ),
  );
  const samples = results.flatMap((r) => r.samples);
  const judged = results.flatMap((r) => r.judged);
  const report = evalReport(samples, judged, arms.map((a) => a.label), opts.budgets, performance.now() - started);
  if (opts.judgeSummary) report.judge = opts.judgeSummary();
  return report;
}

/** Searches of one prompt whose seeds sit in the prompt's own block: base + p·SEED_BLOCK + k. */
export const SEED_BLOCK = 1000;

/**
 * Every (prompt, run seed) of an eval, each with its own seed; the unit of pool sharing. Search k of prompt p has
 * seed base + p·1000 + k, as every eval so far had (cached pools and journals are keyed by it); a prompt's searches
 * past its 1,000th, which would take the next prompt's seeds, are numbered on after every prompt's block.
 */
export function evalUnits<R extends EvalRecord>(records: R[], seeds: (record: R) => number, base: number): Array<{ record: R; seed: number }> {
  let beyond = base + records.length * SEED_BLOCK;
  return records.flatMap((record, p) =>
    Array.from({ length: seeds(record) }, (_, k) => ({ record, seed: k < SEED_BLOCK ? base + p * SEED_BLOCK + k : beyond++ })),
  );
}

export interface UnitOptions extends Pick<EvalOptions, 'budgets' | 'roles' | 'judge' | 'width' | 'chainHead' | 'verifierAuc' | 'prices' | 'signal' | 'timing'> {
  record: EvalRecord;
  seed: number;
  arms: EvalArm[];
  /** where the searches keep what they make: pool calls shared between them, `name` tells the searches apart */
  pool: { session(verifierScope: string, name: string): SearchIO };
  onResult?: (r: EvalSample) => void;
}

/**
 * One prompt and run seed: each arm × budget is one search, its final image judged. The searches share their noise
 * pool (same seeds, same images), so a budget ladder costs little more than its largest rung for `noise`.
 */
export async function evalUnit(opts: UnitOptions): Promise<{ samples: EvalSample[]; judged: Judged[] }> {
  const { record, seed } = opts;
  const samples: EvalSample[] = [];
  const judged: Judged[] = [];
  const maxBudget = Math.max(...opts.budgets);
  for (const arm of opts.arms) {
    const strategy = arm.strategy;
    for (const budget of [...opts.budgets].sort((a, b) => a - b)) {
      opts.signal?.throwIfAborted();
      const params = {
        ...paramsForBudget(strategy, budget, opts.width, seed, opts.chainHead ?? 'latest'),
        ...(arm.stopAt !== undefined ? { stopAt: arm.stopAt } : {}),
      };
      const io = opts.pool.session(arm.verifierScope ?? '', `${arm.label}\u0000${budget}`);
      const meta = metaFor(record);
      const started = performance.now();
      const result = await search({
        prompt: record.prompt,
        ...(meta ? { meta } : {}),
        params,
        roles: arm.roles ?? opts.roles,
        io,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      const searchMs = performance.now() - started;
      const best = result.candidates.find((c) => c.id === result.bestId);
      const cost = costOf(result.usage, backendNames(arm.roles ?? opts.roles), opts.prices);
      const verdict: Verdict = best ? await opts.judge((await io.loadImage(best.id)).png, record) : { correct: false, reason: 'no image' };
      const sample: EvalSample = {
        prompt: record.prompt,
        tag: record.tag,
        strategy: arm.label,
        budget,
        seed,
        correct: verdict.correct,
        ...(verdict.reason ? { reason: verdict.reason } : {}),
        score: best?.evaluation?.score ?? null,
        imagesGenerated: result.imagesGenerated,
        vlmCalls: (['verifier', 'reflector', 'refiner'] as const).reduce((n, r) => n + (result.usage[r]?.calls ?? 0), 0),
        price: cost?.total ?? null,
        ...(cost?.builtIn ? { builtIn: cost.builtIn } : {}),
        ...(verdict.score !== undefined ? { judgeScore: verdict.score } : {}),
        ...(verdict.error !== undefined ? { judgeError: verdict.error } : {}),
        ...(opts.timing
          ? { ms: Math.round(searchMs), callMs: Math.round(Object.values(result.usage).reduce((n, u) => n + (u?.ms ?? 0), 0)) }
          : {}),
      };
      samples.push(sample);
      if (opts.verifierAuc && strategy === 'noise' && !arm.roles && budget === maxBudget) {
        const pool = `${record.prompt}\u0000${seed}`;
        for (const c of result.candidates) {
          if (!c.evaluation) continue;
          // the final image is already judged
          const v = c.id === best?.id ? verdict : await opts.judge((await io.loadImage(c.id)).png, record);
          if (v.error !== undefined) continue;
          judged.push({ score: c.evaluation.score, ...(c.evaluation.label ? { label: c.evaluation.label } : {}), correct: v.correct, tag: record.tag, pool });
        }
      }
      opts.onResult?.(sample);
    }
  }
  return { samples, judged };
}

