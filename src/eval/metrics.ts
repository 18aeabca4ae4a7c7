/**
 * What an eval's samples say: accuracy per cell and GenEval tag, spending per search, and how the search's verifier
 * agrees with the judge (ROC-AUC pooled, within each search's pool, and per tag). Pure functions of the samples,
 * apart from the runner that makes them (harness.ts).
 */
import type { PriceSource } from '../core/prices.js';
import type { JudgeSummary } from './judge.js';

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
  /** estimated price of the search from `EvalOptions.prices` and the built-in ones, null without a price for any of its backends */
  price: number | null;
  /** the backends `price` took from the built-in table, with where and when their price was read */
  builtIn?: Record<string, PriceSource>;
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
  /** the backends the searches' prices took from the built-in table (absent when none did) */
  builtInPrices?: Record<string, PriceSource>;
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
  const builtIn = Object.assign({}, ...ordered.map((s) => s.builtIn ?? {})) as Record<string, PriceSource>;
  if (Object.keys(builtIn).length) report.builtInPrices = builtIn;
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
