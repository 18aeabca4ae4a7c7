/**
 * eval with a judge apart from the search's verifier: free-form prompt lists, a judge backend over HTTP (our own
 * `serve` over the procedural roles, whose verifier is the ShapeWorld evaluator), the judge's calls counted apart.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpenAIBackend } from '../src/backends/openai/index.js';
import { createProceduralBackend } from '../src/backends/procedural/index.js';
import { loadPromptList } from '../src/config/prompts.js';
import type { Verifier } from '../src/core/roles.js';
import { reportUsage } from '../src/core/usage.js';
import { metaFor, runEval, type EvalRecord } from '../src/eval/harness.js';
import type { EvalSample } from '../src/eval/metrics.js';
import { passes, verifierJudge } from '../src/eval/judge.js';
import { markdownTable } from '../src/eval/output.js';
import type { RunningServer } from '../src/server/server.js';
import { cliRun, tmpDir } from './helpers/cli.js';
import { serve } from './server/helpers.js';

const COLOURS = ['red', 'blue', 'green', 'yellow', 'purple', 'orange', 'white'];
const SHAPES = ['circle', 'square', 'triangle', 'star', 'diamond'];
/** 20 DrawBench-style prompts in three categories, in the words the procedural roles draw */
const FREE_FORM: Array<{ prompt: string; category: string }> = [
  ...COLOURS.map((c, i) => ({ prompt: `a photo of a ${c} ${SHAPES[i % 5]}`, category: 'Colors' })),
  ...Array.from({ length: 7 }, (_, i) => ({ prompt: `a photo of ${['two', 'three', 'four'][i % 3]} ${SHAPES[(i + 1) % 5]}s`, category: 'Counting' })),
  ...Array.from({ length: 6 }, (_, i) => ({
    prompt: `a photo of a ${SHAPES[i % 5]} ${['left of', 'right of', 'above', 'below'][i % 4]} a ${SHAPES[(i + 2) % 5]}`,
    category: 'Positional',
  })),
];

let server: RunningServer;
let requests = 0;
beforeAll(async () => {
  server = await serve(createProceduralBackend(), { log: () => requests++ });
});
afterAll(() => server.close());

/** A search verifier unlike the judge: a score from the image's bytes (it ranks, but knows nothing of the prompt). */
const hashVerifier: Verifier = {
  name: 'hash',
  concurrency: 4,
  verify: async ({ image }) => ({ score: createHash('sha256').update(image.png).digest()[0]! / 255 }),
};

describe('loadPromptList', () => {
  it('reads plain text, free-form JSONL and GenEval JSONL, and refuses a file that mixes them', () => {
    const d = tmpDir();
    const txt = path.join(d, 'p.txt');
    writeFileSync(txt, 'a photo of a red circle\n\n  two stars  \n');
    expect(loadPromptList(txt)).toEqual({ kind: 'free-form', records: [{ prompt: 'a photo of a red circle', tag: 'all' }, { prompt: 'two stars', tag: 'all' }] });
    const jsonl = path.join(d, 'p.jsonl');
    writeFileSync(jsonl, '{"prompt": "a cat", "category": "Animals", "Challenge": "Basic"}\n{"prompt": "a dog"}\n');
    expect(loadPromptList(jsonl)).toEqual({
      kind: 'free-form',
      records: [
        { prompt: 'a cat', tag: 'Animals', category: 'Animals', Challenge: 'Basic' },
        { prompt: 'a dog', tag: 'all' },
      ],
    });
    const geneval = path.join(d, 'g.jsonl');
    writeFileSync(geneval, '{"tag": "single_object", "include": [{"class": "circle", "count": 1}], "prompt": "a photo of a circle"}\n');
    expect(loadPromptList(geneval).kind).toBe('geneval');
    writeFileSync(geneval, readFileSync(geneval, 'utf8') + '{"prompt": "a cat"}\n');
    expect(() => loadPromptList(geneval)).toThrow(/g\.jsonl:2: mixes GenEval records/);
    writeFileSync(jsonl, '{"prompt": "a cat"}\n{"category": "x"}\n');
    expect(() => loadPromptList(jsonl)).toThrow(/p\.jsonl:2: prompt: Invalid input/);
  });
});

describe('verifierJudge', () => {
  it("counts the judge's calls, tokens and price apart, and leaves a failed judgement out of the accuracies", async () => {
    let n = 0;
    const flaky: Verifier = {
      name: 'vlm:judge',
      concurrency: 2,
      verify: async () => {
        reportUsage({ inputTokens: 100, outputTokens: 2 });
        if (n++ === 3) throw new Error('503 from the judge');
        return { score: 1.9, label: 'yes' };
      },
    };
    const j = verifierJudge(flaky, { price: { perCall: 0.01, perMillionInputTokens: 1000 } }, metaFor);
    const proc = createProceduralBackend();
    const records: EvalRecord[] = FREE_FORM.slice(0, 3).map((p) => ({ prompt: p.prompt, tag: p.category }));
    const report = await runEval({
      records,
      strategies: ['noise'],
      budgets: [1, 2],
      roles: { generator: proc.generator, verifier: hashVerifier },
      judge: j.judge,
      judgeSummary: j.summary,
      timing: true,
      seedsPerPrompt: 1,
      width: 2,
      seed: 0,
      jobs: 1,
    });
    expect(report.judge).toMatchObject({ name: 'vlm:judge', kinds: ['yes/no'], usage: { calls: 6, failed: 1, inputTokens: 600, outputTokens: 12 } });
    expect(report.judge!.price).toBeCloseTo(6 * 0.01 + (600 * 1000) / 1e6, 10);
    const failed = report.samples.filter((s) => s.judgeError);
    expect(failed).toHaveLength(1);
    expect(failed[0]!.judgeError).toMatch(/503/);
    const cell = report.cells.find((c) => c.strategy === 'noise' && c.budget === failed[0]!.budget)!;
    expect(cell.unjudged).toBe(1);
    expect(Object.values(cell.categories).reduce((a, c) => a + c.total, 0)).toBe(2);
    // the search's own calls: one verification per image, none of the judge's
    for (const s of report.samples) expect(s.vlmCalls).toBe(s.budget);
    const table = markdownTable(report);
    expect(table).toContain('Judged by vlm:judge (yes/no)');
    expect(table).toContain('1 searches are left out: their judge call failed.');
    expect(table).toContain('Judge vlm:judge: 6 calls (1 failed, 0 retries), 600 input and 12 output tokens');
    expect(table).toContain('| strategy | budget | images/search | VLM calls/search | call s/search | wall s/search |');
  });

  it('reads a rubric judgement as correct above 5 of 10', () => {
    expect(passes({ score: 0.6 })).toBe(true);
    expect(passes({ score: 0.5 })).toBe(false);
    expect(passes({ score: 1.2, label: 'no' })).toBe(false);
    expect(passes({ score: 0.1, label: 'yes' })).toBe(true);
  });
});

describe('eval --judge over HTTP', () => {
  it("every verdict is the judge's verdict on that search's own final image, whatever order searches finish in", async () => {
    const records: EvalRecord[] = FREE_FORM.map((p) => ({ prompt: p.prompt, tag: p.category }));
    const proc = createProceduralBackend();
    const roles = { generator: proc.generator, verifier: hashVerifier };
    const common = { records, strategies: ['noise' as const], budgets: [1, 2, 4], roles, seedsPerPrompt: 1, width: 2, seed: 0 };
    const remote = verifierJudge(createOpenAIBackend({ baseURL: server.url, model: 'reflectionflow-verifier', mode: 'yesno', maxRetries: 0 }).verifier, null, metaFor);
    const before = requests;
    const overHttp = await runEval({ ...common, judge: remote.judge, judgeSummary: remote.summary, jobs: 6 });
    // the evaluator in-process, one search at a time: the reference
    const local = verifierJudge(createProceduralBackend().verifier, null, metaFor);
    const reference = await runEval({ ...common, judge: local.judge, jobs: 1 });
    const key = (s: EvalSample) => `${s.prompt}|${s.budget}`;
    const want = new Map(reference.samples.map((s) => [key(s), s.correct]));
    expect(overHttp.samples).toHaveLength(60);
    for (const s of overHttp.samples) expect(s.correct).toBe(want.get(key(s)));
    // the verdicts differ between images: the check above could fail
    expect(new Set(overHttp.samples.map((s) => s.correct)).size).toBe(2);
    expect(overHttp.judge!.usage.calls).toBe(60);
    expect(requests - before).toBe(60); // the server saw the judge's calls and nothing else
  });

  it('a 20-prompt free-form list: table, JSON and plot per category, judged by openai against serve, the judge counted apart', async () => {
    const d = tmpDir();
    const prompts = path.join(d, 'drawbench-style.jsonl');
    writeFileSync(prompts, FREE_FORM.map((p) => JSON.stringify(p)).join('\n') + '\n');
    const judge = { backend: 'openai', baseURL: server.url, model: 'reflectionflow-verifier', mode: 'yesno', maxRetries: 0 };
    const config = path.join(d, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({ backend: 'procedural', roles: { verifier: { backend: 'embedded' } }, judge, prices: { 'openai:reflectionflow-verifier': { perCall: 0.002 } } }),
    );
    const out = path.join(d, 'evals');
    const before = requests;
    const r = await cliRun(['eval', '--prompts', prompts, '--config', config, '--judge', 'openai', '--strategies', 'noise', '--budgets', '1,2,4', '--out', out, '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(requests - before).toBe(60); // 20 prompts × 3 rungs, one judgement each; the search verified in-process
    expect(r.stdout).toContain('| strategy | budget | Colors | Counting | Positional | overall |');
    expect(r.stdout).toContain('Judged images per cell: Colors 7, Counting 7, Positional 6.');
    expect(r.stdout).toContain('Judged by openai:reflectionflow-verifier (yes/no)');
    expect(r.stdout).toContain('Judge openai:reflectionflow-verifier: 60 calls (0 failed, 0 retries)');
    expect(r.stdout).toContain('price 0.120');
    expect(r.stdout).toMatch(/\| noise \| 4 \| 4\.0 \| 4\.0 \| \d+\.\d\d \| \d+\.\d\d \|/);
    const [dir] = readdirSync(out);
    const res = JSON.parse(readFileSync(path.join(out, dir!, 'results.json'), 'utf8'));
    expect(res.setup).toMatchObject({ judge: 'openai:reflectionflow-verifier', promptKind: 'free-form', roles: { verifier: 'embedded' } });
    expect(res.judge.usage).toMatchObject({ calls: 60, failed: 0 });
    expect(res.judge.price).toBeCloseTo(0.12, 10);
    expect(res.tags).toEqual(['Colors', 'Counting', 'Positional']);
    for (const c of res.cells) {
      expect(c.meanVlmCalls).toBe(c.budget); // the search's verifications only
      expect(c.meanMs).toBeGreaterThanOrEqual(0);
      expect(c.meanCallMs).toBeGreaterThan(0);
    }
    const samples = readFileSync(path.join(out, dir!, 'samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(samples).toHaveLength(60);
    for (const s of samples) expect(typeof s.judgeScore).toBe('number');
    const svg = readFileSync(path.join(out, dir!, 'scaling.svg'), 'utf8');
    expect(svg).toContain('drawbench-style.jsonl: judged accuracy vs budget (judge: openai:reflectionflow-verifier)');
    expect((svg.match(/<polyline/g) ?? []).length).toBe(1);
  }, 120_000);

  it('ShapeWorld prompts with a rubric judge over HTTP: one judge call per search, the table names the judge, the paper\'s detector rows stay out', async () => {
    const d = tmpDir();
    const config = path.join(d, 'config.json');
    writeFileSync(config, JSON.stringify({ backend: 'procedural', judge: { backend: 'openai', baseURL: server.url, model: 'reflectionflow-verifier', mode: 'rubric', maxRetries: 0 } }));
    const out = path.join(d, 'evals');
    const before = requests;
    const r = await cliRun(['eval', '--split', 'test', '--limit', '1', '--seeds', '1', '--config', config, '--judge', 'openai', '--strategies', 'noise', '--budgets', '1', '--out', out, '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(requests - before).toBe(6); // one prompt per GenEval category, one rung
    expect(r.stdout).toContain('| strategy | budget | single_object | two_object | counting | colors | position | color_attr | overall |');
    expect(r.stdout).toContain('Judged by openai:reflectionflow-verifier (rubric: correct = overall above 5 of 10)');
    expect(r.stdout).not.toContain('paper: FLUX.1-dev');
    const [dir] = readdirSync(out);
    expect(readFileSync(path.join(out, dir!, 'table.md'), 'utf8')).not.toContain('paper: FLUX.1-dev');
    expect(readFileSync(path.join(out, dir!, 'scaling.svg'), 'utf8')).toContain('GenEval-Shapes: judged accuracy vs budget (judge: openai:reflectionflow-verifier)');
  }, 60_000);

  it('refuses a free-form list without a judge, and the search\'s own verifier as judge unless asked: one line, exit 2, nothing written', async () => {
    const d = tmpDir();
    const prompts = path.join(d, 'p.txt');
    writeFileSync(prompts, FREE_FORM.map((p) => p.prompt).join('\n') + '\n');
    const out = path.join(d, 'evals');
    const bare = await cliRun(['eval', '--prompts', prompts, '--backend', 'procedural', '--out', out]);
    expect(bare.code).toBe(2);
    expect(bare.stderr.trim().split('\n')).toHaveLength(1);
    expect(bare.stderr).toMatch(/free-form prompt list, which only a judge can score: give --judge <backend>/);
    const self = await cliRun(['eval', '--prompts', prompts, '--backend', 'procedural', '--judge', 'procedural', '--out', out]);
    expect(self.code).toBe(2);
    expect(self.stderr.trim().split('\n')).toHaveLength(1);
    expect(self.stderr).toMatch(/the judge would be the search's own verifier \(procedural with the same options\).*--self-judge/);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
    const asked = await cliRun(['eval', '--prompts', prompts, '--backend', 'procedural', '--judge', 'procedural', '--self-judge', '--budgets', '1', '--limit', '2', '--out', out, '--quiet']);
    expect(asked.code).toBe(0);
    expect(asked.stdout).toContain('Judged by oracle (yes/no)');
  }, 60_000);
});
