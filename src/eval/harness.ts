import pLimit from 'p-limit';
import type { RoleSet } from '../core/roles.js';
import type { Strategy } from '../core/types.js';
import type { PromptRecord } from '../config/prompts.js';
import { metaOf } from '../config/prompts.js';
import type { PromptMeta } from '../core/types.js';
import type { JudgeSummary } from './judge.js';
import { search } from '../search/loop.js';
import { backendNames, costOf } from '../run.js';
import type { Price } from '../core/usage.js';
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
  /** prices per backend name (as run.json's cost estimate) */
  prices?: Record<string, Price>;
  /** keep pool images on disk across eval runs (same generator identity ⇒ same images) */
  cache?: { dir: string; generatorKey: string };
  /** who judged and what the judge spent, for the report (a judge backend's calls, apart from the search's) */
  judgeSummary?: () => JudgeSummary;
  /** record each search's wall time and summed call time (the table then shows them per rung) */
  timing?: boolean;
  onResult?: (r: EvalSample, done: number, total: number) => void;
}

export interface EvalSample {
  prompt: string;
  tag: string;
  /** the arm's label (the strategy's name for a plain strategy) */
  strategy: string;
  budget: number;
  seed: number;
  correct: boolean;
  reason?: string;
  score: number | null;
  imagesGenerated: number;
  /** verifier, reflector and refiner calls of the search (pool calls shared with other rungs counted as made) */
  vlmCalls: number;
  /** estimated price of the search from `EvalOptions.prices`, null without a price for any of its backends */
  price: number | null;
  /** a judge backend's own score of the final image */
  judgeScore?: number;
  /** the judge call failed: the sample counts in spending, not in accuracy */
  judgeError?: string;
  /** with `timing`: the search's wall time in this eval, ms (pool calls an earlier rung made are not made again) */
  ms?: number;
  /** with `timing`: the search's calls' summed time, ms (pool calls shared with other rungs counted as made) */
  callMs?: number;
}

export interface EvalCell {
  /** the arm's label */
  strategy: string;
  budget: number;
  /** accuracy per GenEval tag */
  categories: Record<string, { correct: number; total: number; accuracy: number }>;
  /** mean of the category accuracies, as GenEval reports */
  overall: number;
  /** images generated over all of the cell's searches */
  images: number;
  /** images generated per search, on average (below the budget when searches stop early) */
  meanImages: number;
  /** verifier, reflector and refiner calls per search, on average */
  meanVlmCalls: number;
  /** estimated price per search, on average; null when no search had a price */
  meanPrice: number | null;
  /** with timing: the searches' wall time and summed call time, ms per search on average */
  meanMs?: number;
  meanCallMs?: number;
  /** searches whose judge call failed (left out of the accuracies) */
  unjudged?: number;
}

export interface VerifierAgreement {
  /** ROC-AUC of the verifier's score against the judge's verdict, over every pool image judged */
  auc: number;
  images: number;
  positives: number;
  /** share of images where the verifier's yes/no label agrees with the judge (yes/no verifiers) */
  labelAccuracy: number | null;
  /**
   * Mean ROC-AUC within one search's pool (one prompt and seed), over the pools holding both verdicts: how well the
   * verifier ranks candidates of the same prompt, which is what best-of-N needs (the pooled AUC also credits telling
   * easy prompts from hard ones).
   */
  withinPoolAuc: number | null;
  /** pools that hold both correct and wrong images (the ones withinPoolAuc averages) */
  mixedPools: number;
  /** the same figures per GenEval tag */
  byTag: Record<string, { auc: number; images: number; positives: number }>;
}

export interface EvalReport {
  verifier?: VerifierAgreement;
  /** arm labels, in the order asked */
  strategies: string[];
  budgets: number[];
  tags: string[];
  cells: EvalCell[];
  samples: EvalSample[];
  wallMs: number;
  /** a judge backend: who judged and its own calls, tokens and price */
  judge?: JudgeSummary;
}

/**
 * The benchmark: every prompt × run seed × strategy × budget is one search; its final image is judged. Searches of
 * one prompt and seed share their noise pool (same seeds, same images), so a budget ladder costs little more than
 * its largest rung for `noise`.
 */
export async function runEval(opts: EvalOptions): Promise<EvalReport> {
  const started = performance.now();
  const samples: EvalSample[] = [];
  const judged: Judged[] = [];
  const seeds = typeof opts.seedsPerPrompt === 'number' ? () => opts.seedsPerPrompt as number : opts.seedsPerPrompt;
  const units = evalUnits(opts.records, seeds, opts.seed);
  const arms: EvalArm[] = opts.strategies.map((s) => (typeof s === 'string' ? { label: s, strategy: s } : s));
  const total = units.length * arms.length * opts.budgets.length;
  const limit = pLimit(Math.max(1, opts.jobs));
  await Promise.all(
    units.map(({ record, seed }) =>
      limit(async () => {
        const pool = new SharedPoolIO(opts.cache ? { ...opts.cache, prompt: record.prompt } : undefined);
        const onResult = (s: EvalSample) => {
          samples.push(s);
          opts.onResult?.(s, samples.length, total);
        };
        const out = await evalUnit({ ...opts, record, seed, arms, pool, onResult });
        judged.push(...out.judged);
      }),
    ),
  );
  const report = evalReport(samples, judged, arms.map((a) => a.label), opts.budgets, performance.now() - started);
  if (opts.judgeSummary) report.judge = opts.judgeSummary();
  return report;
}

/** Every (prompt, run seed) of an eval, each with its own seed; the unit of pool sharing. */
export function evalUnits<R extends EvalRecord>(records: R[], seeds: (record: R) => number, base: number): Array<{ record: R; seed: number }> {
  return records.flatMap((record, p) => Array.from({ length: seeds(record) }, (_, k) => ({ record, seed: base + p * 1000 + k })));
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
        price: costOf(result.usage, backendNames(arm.roles ?? opts.roles), opts.prices)?.total ?? null,
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

/**
 * The report of an eval's samples, whatever order they finished in: samples and judged pool images are put in one
 * order first, so that sums of floats (prices, per-pool AUCs) come out the same bit for bit in one process or many.
 */
export function evalReport(samples: EvalSample[], judged: Judged[], strategies: string[], budgets: number[], wallMs: number): EvalReport {
  const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const ordered = [...samples].sort(
    (a, b) => byText(a.tag, b.tag) || byText(a.prompt, b.prompt) || a.seed - b.seed || byText(a.strategy, b.strategy) || a.budget - b.budget,
  );
  const report = summarise(ordered, strategies, budgets, wallMs);
  report.samples = samples;
  const pools = [...judged].sort((a, b) => byText(a.pool, b.pool) || a.score - b.score || Number(a.correct) - Number(b.correct));
  if (pools.length) report.verifier = verifierAgreement(pools);
  return report;
}

/** ROC-AUC by the rank-sum (Mann–Whitney) statistic, ties counted half. */
export function rocAuc(items: ReadonlyArray<{ score: number; correct: boolean }>): number {
  const sorted = [...items].sort((a, b) => a.score - b.score);
  let rankSumPos = 0;
  let i = 0;
  while (i < sorted.length) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1]!.score === sorted[i]!.score) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (sorted[k]!.correct) rankSumPos += rank;
    i = j + 1;
  }
  const pos = items.filter((x) => x.correct).length;
  const neg = items.length - pos;
  if (pos === 0 || neg === 0) return NaN;
  return (rankSumPos - (pos * (pos + 1)) / 2) / (pos * neg);
}

export type Judged = { score: number; label?: 'yes' | 'no'; correct: boolean; tag: string; pool: string };

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    const list = out.get(k);
    if (list) list.push(it);
    else out.set(k, [it]);
  }
  return out;
}

/** How the verifier's scores agree with the judge: pooled, within each search's pool, and per tag. */
export function verifierAgreement(judged: Judged[]): VerifierAgreement {
  const labelled = judged.filter((j) => j.label);
  const pools = [...groupBy(judged, (j) => j.pool).values()].map(rocAuc).filter((a) => !Number.isNaN(a));
  const byTag: VerifierAgreement['byTag'] = {};
  for (const [tag, items] of groupBy(judged, (j) => j.tag)) {
    byTag[tag] = { auc: rocAuc(items), images: items.length, positives: items.filter((j) => j.correct).length };
  }
  return {
    withinPoolAuc: pools.length ? pools.reduce((a, b) => a + b, 0) / pools.length : null,
    mixedPools: pools.length,
    byTag,
    auc: rocAuc(judged),
    images: judged.length,
    positives: judged.filter((j) => j.correct).length,
    labelAccuracy: labelled.length ? labelled.filter((j) => (j.label === 'yes') === j.correct).length / labelled.length : null,
  };
}

export function summarise(samples: EvalSample[], strategies: string[], budgets: number[], wallMs: number): EvalReport {
  const tags = [...new Set(samples.map((s) => s.tag))].sort((a, b) => tagOrder(a) - tagOrder(b) || a.localeCompare(b));
  const cells: EvalCell[] = [];
  for (const strategy of strategies) {
    for (const budget of budgets) {
      const mine = samples.filter((s) => s.strategy === strategy && s.budget === budget);
      const judged = mine.filter((s) => s.judgeError === undefined);
      const timed = mine.filter((s) => s.ms !== undefined);
      const categories: EvalCell['categories'] = {};
      for (const tag of tags) {
        const t = judged.filter((s) => s.tag === tag);
        const correct = t.filter((s) => s.correct).length;
        categories[tag] = { correct, total: t.length, accuracy: t.length ? correct / t.length : 0 };
      }
      const accs = Object.values(categories).filter((c) => c.total > 0).map((c) => c.accuracy);
      cells.push({
        strategy,
        budget,
        categories,
        overall: accs.length ? accs.reduce((a, b) => a + b, 0) / accs.length : 0,
        images: mine.reduce((a, s) => a + s.imagesGenerated, 0),
        meanImages: mine.length ? mine.reduce((a, s) => a + s.imagesGenerated, 0) / mine.length : 0,
        meanVlmCalls: mine.length ? mine.reduce((a, s) => a + s.vlmCalls, 0) / mine.length : 0,
        meanPrice: mine.some((s) => s.price !== null) ? mine.reduce((a, s) => a + (s.price ?? 0), 0) / mine.length : null,
        ...(timed.length
          ? { meanMs: timed.reduce((a, s) => a + s.ms!, 0) / timed.length, meanCallMs: timed.reduce((a, s) => a + (s.callMs ?? 0), 0) / timed.length }
          : {}),
        ...(judged.length < mine.length ? { unjudged: mine.length - judged.length } : {}),
      });
    }
  }
  return { strategies, budgets, tags, cells, samples, wallMs: Math.round(wallMs) };
}

/** GenEval's column order. */
export const GENEVAL_TAGS = ['single_object', 'two_object', 'counting', 'colors', 'position', 'color_attr'];

function tagOrder(tag: string): number {
  const i = GENEVAL_TAGS.indexOf(tag);
  return i < 0 ? GENEVAL_TAGS.length : i;
}
