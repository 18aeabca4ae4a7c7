import { describe, expect, it } from 'vitest';
import { paramsForBudget } from '../src/eval/budget.js';
import { BUILT_IN_PRICES } from '../src/core/prices.js';
import { evalUnits, runEval, type Judge } from '../src/eval/harness.js';
import { markdownTable, scalingSvg } from '../src/eval/output.js';
import type { EvalReport } from '../src/eval/metrics.js';
import { makePlan } from '../src/search/plan.js';
import type { PromptRecord } from '../src/config/prompts.js';
import { createBackend, qualityOf } from './fixtures/fake-backend.mjs';

const judge: Judge = async (png) => ({ correct: (await qualityOf({ png })) >= 140 });

const records: PromptRecord[] = ['single_object', 'colors', 'position'].flatMap((tag) =>
  [0, 1, 2].map((i) => ({ tag, include: [{ class: 'circle', count: 1 }], prompt: `${tag} prompt ${i}` })),
);

describe('eval budgets', () => {
  it('spends exactly the budget for every strategy', () => {
    for (const strategy of ['noise', 'noise+prompt', 'reflection'] as const) {
      for (const b of [1, 2, 3, 4, 8, 16, 32]) {
        expect(makePlan(paramsForBudget(strategy, b, 2, 0)).budget).toBe(b);
      }
    }
    expect(paramsForBudget('reflection', 32, 2, 0)).toMatchObject({ samples: 16, width: 2, depth: 8 });
  });
});

describe('runEval', () => {
  it('judges the final image of every budget and shares the noise pool across budgets', async () => {
    const backend = createBackend();
    const report = await runEval({
      records,
      strategies: ['noise', 'reflection'],
      budgets: [1, 2, 4, 8],
      roles: backend,
      judge,
      seedsPerPrompt: 2,
      width: 2,
      seed: 0,
      jobs: 3,
    });
    expect(report.samples).toHaveLength(records.length * 2 * 2 * 4);
    // the 8-image noise pool holds every smaller pool, the reflection runs' pools too (same seeds, same ids):
    // 8 generations per prompt and seed, not 1+2+4+8 (+1+1+2+4)
    expect(backend.stats.calls.generate).toBe(records.length * 2 * 8);
    const noise = report.cells.filter((c) => c.strategy === 'noise').map((c) => c.overall);
    for (let i = 1; i < noise.length; i++) expect(noise[i]!).toBeGreaterThanOrEqual(noise[i - 1]!);
    expect(report.tags).toEqual(['single_object', 'colors', 'position']);
    const cell = report.cells[0]!;
    expect(cell.categories.colors!.total).toBe(6);
    const table = markdownTable(report);
    expect(table).toContain('| strategy | budget | single_object | colors | position | overall |');
    // one row per strategy and budget in the score table, and again in the spending table below it
    expect(table.split('\n').filter((l) => l.startsWith('| noise') || l.startsWith('| reflection'))).toHaveLength(16);
    expect(table).toContain('| noise | 8 | 8.0 | 8.0 |');
    const svg = scalingSvg(report);
    expect(svg).toContain('<polyline');
    expect((svg.match(/<polyline/g) ?? []).length).toBe(2);
  });
});

describe('eval units', () => {
  it('keeps seed base + p·1000 + k for the first 1,000 searches of a prompt, and never gives one seed twice', () => {
    const two = [{ prompt: 'a', tag: 't' }, { prompt: 'b', tag: 't' }];
    const units = evalUnits(two, () => 1002, 5);
    const seeds = units.map((u) => u.seed);
    expect(new Set(seeds).size).toBe(2004);
    expect(units.filter((u) => u.record.prompt === 'a').map((u) => u.seed).slice(0, 1000)).toEqual(Array.from({ length: 1000 }, (_, k) => 5 + k));
    expect(units.filter((u) => u.record.prompt === 'b').map((u) => u.seed).slice(0, 1000)).toEqual(Array.from({ length: 1000 }, (_, k) => 1005 + k));
    // past the block: numbered on after every prompt's block, in prompt order
    expect(units.filter((u) => u.seed >= 2005).map((u) => [u.record.prompt, u.seed])).toEqual([['a', 2005], ['a', 2006], ['b', 2007], ['b', 2008]]);
  });

  it('lists the samples in plan order (prompt, seed, arm, budget), not the order searches finished in', async () => {
    const backend = createBackend({ jitterMs: 15 });
    const report = await runEval({ records: records.slice(0, 4), strategies: ['noise', 'reflection'], budgets: [2, 4], roles: backend, judge, seedsPerPrompt: 2, width: 2, seed: 0, jobs: 4 });
    const order = report.samples.map((s) => `${s.prompt}|${s.seed}|${s.strategy}|${s.budget}`);
    const planned = records.slice(0, 4).flatMap((r, p) => [0, 1].flatMap((k) => ['noise', 'reflection'].flatMap((a) => [2, 4].map((b) => `${r.prompt}|${p * 1000 + k}|${a}|${b}`))));
    expect(order).toEqual(planned);
  });
});

describe('eval arms', () => {
  it('a strategy with its own verifier shares the pool images, never the pool scores', async () => {
    const backend = createBackend();
    const strict = createBackend();
    const oracleVerifier = { ...strict.verifier, name: 'oracle', verify: async (req: Parameters<typeof strict.verifier.verify>[0]) => ({ score: (await judge(req.image.png, records[0]!)).correct ? 1 : 0 }) };
    const report = await runEval({
      records,
      strategies: ['noise', { label: 'noise@oracle', strategy: 'noise', roles: { ...backend, verifier: oracleVerifier }, verifierScope: 'oracle' }],
      budgets: [1, 8],
      roles: backend,
      judge,
      seedsPerPrompt: 1,
      width: 2,
      seed: 0,
      jobs: 2,
    });
    expect(report.strategies).toEqual(['noise', 'noise@oracle']);
    expect(backend.stats.calls.generate).toBe(records.length * 8); // images shared
    expect(backend.stats.calls.verify).toBe(records.length * 8); // the configured verifier scored each pool image once
    const oracle8 = report.cells.find((c) => c.strategy === 'noise@oracle' && c.budget === 8)!;
    const noise8 = report.cells.find((c) => c.strategy === 'noise' && c.budget === 8)!;
    expect(oracle8.overall).toBeGreaterThanOrEqual(noise8.overall); // the judge itself picks
    const table = markdownTable(report, { paper: true });
    expect(table).toContain('| noise@oracle | 8 |');
    expect(table).toContain('| reflection (ReflectionFlow) | 32 | 0.91 |');
    expect(scalingSvg(report, 't', { paper: true })).not.toContain('ReflectionFlow'); // no budget 32 on this plot
    expect(scalingSvg(report, 't', { paper: true })).toContain('FLUX.1-dev 0.67');
  });
});

describe('eval with stop-at', () => {
  it('plots a stop-at arm at the images it spent, left of the budget, and its label whole, with one budget too', () => {
    const cell = (strategy: string, overall: number, meanImages: number) => ({ strategy, budget: 32, overall, meanImages });
    const report = {
      budgets: [32],
      strategies: ['reflection', 'reflection stop@0.95'],
      cells: [cell('reflection', 0.946, 32), cell('reflection stop@0.95', 0.941, 10.4)],
    } as unknown as EvalReport;
    const svg = scalingSvg(report);
    const xs = [...svg.matchAll(/<circle cx="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(xs).toHaveLength(2);
    expect(xs[1]!).toBeLessThan(xs[0]! - 100);
    // ticks at the powers of two the arms span
    for (const tick of ['16', '32']) expect(svg).toMatch(new RegExp(`text-anchor="middle" fill="#374151">${tick}<`));
    const width = Number(/width="(\d+)"/.exec(svg)![1]);
    const label = /<text x="([\d.]+)" y="[\d.]+">reflection stop@0\.95</.exec(svg)!;
    expect(Number(label[1]) + 7 * 'reflection stop@0.95'.length).toBeLessThanOrEqual(width);
  });

  it('an arm that stops early spends fewer images than its budget and says how many', async () => {
    const backend = createBackend();
    const report = await runEval({
      records,
      strategies: ['noise', { label: 'noise stop@0.6', strategy: 'noise', stopAt: 0.6 }],
      budgets: [8, 32],
      roles: backend,
      judge,
      seedsPerPrompt: 1,
      width: 2,
      seed: 0,
      jobs: 2,
    });
    const fixed = report.cells.find((c) => c.strategy === 'noise' && c.budget === 32)!;
    const adaptive = report.cells.find((c) => c.strategy === 'noise stop@0.6' && c.budget === 32)!;
    expect(fixed.meanImages).toBe(32);
    expect(adaptive.meanImages).toBeLessThan(32);
    expect(adaptive.meanImages).toBeGreaterThanOrEqual(4); // at least one wave
    const table = markdownTable(report);
    expect(table).toContain('| strategy | budget | images/search | VLM calls/search |');
    expect(table).toContain(`| noise stop@0.6 | 32 | ${adaptive.meanImages.toFixed(1)} |`);
    expect(scalingSvg(report)).toContain('stroke-dasharray');
    // noise makes no VLM call but verification: one per image it made
    expect(adaptive.meanVlmCalls).toBeCloseTo(adaptive.meanImages, 10);
    expect(table).not.toContain('price/search');
  });
});

describe('eval prices', () => {
  it('prices searches with a built-in price when the config has none, and the spending table says so', async () => {
    const backend = createBackend();
    const KONTEXT = 'fal:fal-ai/flux-pro/kontext';
    const builtIn = BUILT_IN_PRICES[KONTEXT]!;
    const evalAsKontext = (prompts: number, prices?: Parameters<typeof runEval>[0]['prices']) =>
      runEval({
        records: records.slice(0, prompts),
        strategies: ['noise'],
        budgets: [4],
        roles: { ...backend, generator: { ...backend.generator, name: KONTEXT } },
        judge,
        seedsPerPrompt: 1,
        width: 2,
        seed: 0,
        jobs: 1,
        ...(prices ? { prices } : {}),
      });
    const report = await evalAsKontext(2);
    expect(report.cells[0]!.meanPrice).toBeCloseTo(4 * builtIn.perImage!, 10);
    expect(report.builtInPrices).toEqual({ [KONTEXT]: { source: builtIn.source, asOf: builtIn.asOf } });
    const table = markdownTable(report);
    expect(table).toContain('price/search');
    expect(table).toContain(`built-in price for ${KONTEXT} (fal.ai, read ${builtIn.asOf})`);
    // a config entry of null: no price, no note
    const off = await evalAsKontext(1, { [KONTEXT]: null });
    expect(off.cells[0]!.meanPrice).toBeNull();
    expect(off.builtInPrices).toBeUndefined();
    expect(markdownTable(off)).not.toContain('price/search');
  });
});

describe('rocAuc', () => {
  it('is 1 for a perfect ranking, 0.5 for ties, and counts ties half', async () => {
    const { rocAuc } = await import('../src/eval/metrics.js');
    expect(rocAuc([{ score: 0.1, correct: false }, { score: 0.9, correct: true }])).toBe(1);
    expect(rocAuc([{ score: 0.9, correct: false }, { score: 0.1, correct: true }])).toBe(0);
    expect(rocAuc([{ score: 0.5, correct: false }, { score: 0.5, correct: true }])).toBe(0.5);
    // 2 pos, 2 neg: pairs (p>n): 0.8>0.3, 0.8>0.6, 0.4>0.3; 0.4<0.6 → 3/4
    expect(rocAuc([{ score: 0.8, correct: true }, { score: 0.4, correct: true }, { score: 0.3, correct: false }, { score: 0.6, correct: false }])).toBe(0.75);
  });

  it('separates ranking within a pool from telling prompts apart, and reports per tag', async () => {
    const { verifierAgreement } = await import('../src/eval/metrics.js');
    const j = (pool: string, tag: string, score: number, correct: boolean) => ({ pool, tag, score, correct });
    const v = verifierAgreement([
      // an easy prompt: high scores, ranked right inside its pool
      j('a', 'colors', 0.9, true), j('a', 'colors', 0.8, false),
      // a hard prompt: low scores, ranked wrong inside its pool
      j('b', 'position', 0.1, true), j('b', 'position', 0.2, false),
      // a pool with one verdict only: no within-pool AUC
      j('c', 'position', 0.3, false), j('c', 'position', 0.4, false),
    ]);
    expect(v.mixedPools).toBe(2);
    expect(v.withinPoolAuc).toBe(0.5);
    expect(v.byTag.colors).toEqual({ auc: 1, images: 2, positives: 1 });
    expect(v.byTag.position).toMatchObject({ auc: 0, images: 4, positives: 1 });
    expect(v.auc).toBe(0.5); // 0.9 beats all four wrong images, 0.1 none
  });
});
