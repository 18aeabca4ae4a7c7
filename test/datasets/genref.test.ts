import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createProceduralBackend, explicitPrompt, parseEdit } from '../../src/backends/procedural/index.js';
import { embeddedModelsPresent, MODELS_DIR } from '../../src/backends/embedded/files.js';
import { FlowGenerator } from '../../src/backends/embedded/generator.js';
import { main } from '../../src/cli/main.js';
import { UserError } from '../../src/core/errors.js';
import {
  buildGenref,
  exportRunTriplets,
  listShards,
  readGenrefShard,
  ShardWriter,
  type GenrefIndex,
  type GenrefSample,
  type GenerateFn,
} from '../../src/datasets/genref.js';
import { runSearch } from '../../src/run.js';
import { evaluateImage } from '../../src/shapeworld/evaluate.js';
import { inCheckSet } from '../../src/shapeworld/compositional.js';
import { heldOutCombination, parsePrompt } from '../../src/shapeworld/prompts.js';
import { COMPOSITIONAL_TAGS, type CompositionalTag } from '../../src/shapeworld/rules.js';
import { DEFECTS } from '../../src/shapeworld/scene.js';
import type { SearchParams } from '../../src/core/types.js';

const root = mkdtempSync(path.join(tmpdir(), 'rf-genref-'));
const dir = (name: string): string => path.join(root, name);

async function readAll(out: string): Promise<GenrefSample[]> {
  const samples: GenrefSample[] = [];
  for (const shard of listShards(out)) for await (const s of readGenrefShard(shard)) samples.push(s);
  return samples;
}
const readIndex = (out: string): GenrefIndex => JSON.parse(readFileSync(path.join(out, 'index.json'), 'utf8')) as GenrefIndex;

/** The procedural generator as the model-based source's generator: defects drawn per (prompt, seed). */
const procedural = createProceduralBackend({ defectRate: 0.5 });
const generate: GenerateFn = (reqs) => Promise.all(reqs.map(async (r) => (await procedural.generator.generate({ prompt: r.prompt, seed: r.seed })).png));

const OPTS = { count: 60, modelPrompts: 8, modelSeeds: 4, seed: 5, shardSize: 25, generate, generatorName: 'procedural', command: 'test' } as const;

describe('dataset genref', () => {
  let samples: GenrefSample[];
  let index: GenrefIndex;
  beforeAll(async () => {
    // a stale shard of an earlier, larger set and a killed build's temp file must not survive the rebuild
    mkdirSync(dir('a'), { recursive: true });
    writeFileSync(path.join(dir('a'), 'genref-000009.tar'), 'stale');
    writeFileSync(path.join(dir('a'), '.genref-000000.tar.123.tmp'), 'killed build');
    await buildGenref({ ...OPTS, out: dir('a') });
    samples = await readAll(dir('a'));
    index = readIndex(dir('a'));
  });

  it('writes shards of the asked size, an index that counts them, and nothing else', () => {
    const model = samples.filter((s) => s.record.source === 'model').length;
    expect(samples.filter((s) => s.record.source === 'rule')).toHaveLength(60);
    expect(model).toBeGreaterThan(0);
    expect(model).toBeLessThanOrEqual(8);
    expect(index.triplets).toBe(samples.length);
    expect(index.sources).toEqual({ rule: 60, model, refine: 0, edit: 0, run: 0 });
    expect(index.shards.map((s) => s.triplets)).toEqual([25, 25, samples.length - 50]);
    expect(readdirSync(dir('a')).sort()).toEqual(['genref-000000.tar', 'genref-000001.tar', 'genref-000002.tar', 'index.json']);
    expect(Object.values(index.defects).reduce((a, b) => a + b, 0)).toBe(60);
    expect(Object.values(index.tags).reduce((a, b) => a + b, 0)).toBe(samples.length);
    // every prompt of the model-based source is accounted for: a triplet or a reason
    expect(model + Object.values(index.dropped.model ?? {}).reduce((a, b) => a + b, 0)).toBe(8);
    expect(index.skipped).toEqual([]);
    // model-based triplets are spread among the rule-based ones, not all at the end
    expect(samples.slice(0, 50).some((s) => s.record.source === 'model')).toBe(true);
  });

  it('keys are unique and stable; records carry the fields of a triplet', () => {
    expect(new Set(samples.map((s) => s.record.key)).size).toBe(samples.length);
    for (const { record: r, flawed, enhanced } of samples) {
      expect(r.key).toMatch(new RegExp(`^s5-${r.source}-\\d{7}$`));
      expect(r.key).toBe(`s5-${r.source}-${String(r.index).padStart(7, '0')}`);
      expect(r.prompt.length).toBeGreaterThan(0);
      expect(r.spec!.include.length).toBeGreaterThan(0);
      expect(r.items.length).toBeGreaterThan(0);
      expect(r.reflection).toBe(r.items.join('\n'));
      for (const item of r.items) expect(parseEdit(item), item).not.toBeNull();
      expect(r.flawed.verdict).toBe(false);
      expect(r.enhanced.verdict).toBe(true);
      expect(r.enhanced.score).toBe(1);
      expect(r.flawed.score).toBeLessThan(1);
      expect(r.flawed.reason).toMatch(/expected/);
      expect(typeof r.seedFlawed).toBe('number');
      expect(typeof r.seedEnhanced).toBe('number');
      expect(Buffer.from(flawed.subarray(1, 4)).toString()).toBe('PNG');
      expect(Buffer.from(flawed).equals(Buffer.from(enhanced))).toBe(false);
      // the corrector's instruction: a layout wording of the enhanced image that names the prompt's objects
      expect(r.refinedPrompt, r.key).toMatch(/ (at the|on the|in the) /);
      const classes = (p: string): string[] => [...new Set(parsePrompt(p).include.map((c) => c.class))].sort();
      expect(classes(r.refinedPrompt!), r.key).toEqual(classes(r.prompt));
      if (r.source === 'rule') {
        expect(DEFECTS).toContain(r.defect);
        expect(r.perturbation!.length).toBeGreaterThan(0);
        for (const p of r.perturbation!) expect(parseEdit(p), p).not.toBeNull();
        expect(r.seedFlawed).toBe(r.seedEnhanced);
      } else {
        expect(r.defect).toBeUndefined();
        expect(r.seedFlawed).not.toBe(r.seedEnhanced);
      }
    }
    // training prompts only: no held-out test combination
    for (const s of samples) expect(heldOutCombination(s.record.spec!), s.record.prompt).toBeNull();
  });

  it('the evaluator fails every flawed image and passes every enhanced one', async () => {
    for (const { record: r, flawed, enhanced } of samples) {
      expect((await evaluateImage(flawed, r.spec!)).correct, r.key).toBe(false);
      expect((await evaluateImage(enhanced, r.spec!)).correct, r.key).toBe(true);
    }
  });

  it('rule-based perturbations keep the rest of the scene: the flawed image differs from the enhanced one by its defect', () => {
    const rules = samples.filter((s) => s.record.source === 'rule');
    // several kinds of defect come up even in a small build
    expect(new Set(rules.map((s) => s.record.defect)).size).toBeGreaterThanOrEqual(4);
    for (const { record: r } of rules) {
      if (r.defect === 'missing') expect(r.perturbation![0]).toMatch(/^Remove /);
      if (r.defect === 'extra') expect(r.perturbation![0]).toMatch(/^Add /);
      if (r.defect === 'wrong_relation') expect(r.perturbation![0]).toMatch(/^Move /);
      if (r.defect === 'swapped_binding') expect(r.perturbation).toHaveLength(2);
    }
  });

  it('is deterministic: the same options give byte-identical shards', async () => {
    await buildGenref({ ...OPTS, out: dir('b'), command: 'other' });
    for (const f of ['genref-000000.tar', 'genref-000001.tar', 'genref-000002.tar']) {
      expect(readFileSync(path.join(dir('b'), f)).equals(readFileSync(path.join(dir('a'), f))), f).toBe(true);
    }
    expect(readIndex(dir('b')).shards).toEqual(index.shards);
  });

  it('refinement-based source: same seed before and after the injected refiner; skipped with a reason without one', async () => {
    const calls: string[] = [];
    const refine = (prompt: string, _dets: unknown, reflection: { items: string[] }): string => {
      calls.push(prompt);
      expect(reflection.items.length).toBeGreaterThan(0);
      return explicitPrompt(parsePrompt(prompt));
    };
    const r = await buildGenref({ out: dir('c'), count: 0, refineCount: 12, seed: 2, generate, refine, command: 'test' });
    const got = await readAll(dir('c'));
    expect(got.length).toBe(r.index.sources.refine);
    expect(got.length).toBeGreaterThan(0);
    expect(got.length + Object.values(r.index.dropped.refine ?? {}).reduce((a, b) => a + b, 0)).toBe(12);
    for (const { record: s, flawed, enhanced } of got) {
      expect(s.source).toBe('refine');
      expect(s.seedFlawed).toBe(s.seedEnhanced);
      expect(s.refinedPrompt).toBe(explicitPrompt(parsePrompt(s.prompt)));
      expect(calls).toContain(s.prompt);
      expect((await evaluateImage(flawed, s.spec!)).correct).toBe(false);
      expect((await evaluateImage(enhanced, s.spec!)).correct).toBe(true);
    }
    const logs: string[] = [];
    const none = await buildGenref({ out: dir('d'), count: 3, refineCount: 5, seed: 2, generate, onLog: (m) => logs.push(m) });
    expect(none.index.sources).toEqual({ rule: 3, model: 0, refine: 0, edit: 0, run: 0 });
    expect(none.index.skipped).toEqual([expect.stringMatching(/^refine: .*no prompt refiner/)]);
    expect(logs.join('\n')).toMatch(/no prompt refiner was given; source skipped/);
  });

  it('edit-based source: a sample and its pixel-edited copy differ only where the reflection says', async () => {
    const r = await buildGenref({ out: dir('ed'), count: 0, editPrompts: 10, editSeeds: 3, seed: 4, generate, command: 'test' });
    const got = await readAll(dir('ed'));
    expect(got.length).toBe(r.index.sources.edit);
    expect(got.length + Object.values(r.index.dropped.edit ?? {}).reduce((a, b) => a + b, 0)).toBe(30);
    const sides = new Set<string>();
    for (const { record: s, flawed, enhanced } of got) {
      expect(s.source).toBe('edit');
      expect(s.seedFlawed).toBe(s.seedEnhanced);
      sides.add(s.edited!);
      if (s.edited === 'flawed') expect(s.perturbation!.length).toBeGreaterThan(0);
      for (const item of s.items) expect(parseEdit(item), item).not.toBeNull();
      const [jf, je] = await Promise.all([evaluateImage(flawed, s.spec!), evaluateImage(enhanced, s.spec!)]);
      expect(jf.correct).toBe(false);
      expect(je.correct).toBe(true);
      // a local change: most pixels are bit for bit the same
      const [a, b] = await Promise.all([sharp(flawed).raw().toBuffer(), sharp(enhanced).raw().toBuffer()]);
      let same = 0;
      for (let q = 0; q < a.length; q += 3) if (a[q] === b[q] && a[q + 1] === b[q + 1] && a[q + 2] === b[q + 2]) same++;
      expect(same / (a.length / 3), s.key).toBeGreaterThan(0.6);
    }
    expect(sides).toEqual(new Set(['flawed', 'enhanced']));
    const again = await buildGenref({ out: dir('e2'), count: 0, editPrompts: 10, editSeeds: 3, seed: 4, generate, command: 'test' });
    expect(again.index.shards.map((x) => x.sha256)).toEqual(r.index.shards.map((x) => x.sha256));
  });

  it.runIf(embeddedModelsPresent())('model-based source with the embedded generator (few steps): every prompt ends as a triplet or a counted drop', async () => {
    const generator = await FlowGenerator.load(MODELS_DIR, { steps: 4, threads: 1 });
    const embedded: GenerateFn = async (reqs) =>
      (await generator.sample(reqs.map((r) => ({ tokens: generator.tokenizer.encode(r.prompt), seed: r.seed })))).map((im) => im.png);
    const r = await buildGenref({ out: dir('m'), count: 0, modelPrompts: 6, modelSeeds: 3, seed: 1, generate: embedded, generatorName: generator.identity });
    const got = await readAll(dir('m'));
    expect(got.length + Object.values(r.index.dropped.model ?? {}).reduce((a, b) => a + b, 0)).toBe(6);
    expect(r.index.options.generator).toBe(generator.identity);
    for (const { record: s, flawed, enhanced } of got) {
      expect((await evaluateImage(flawed, s.spec!)).correct).toBe(false);
      expect((await evaluateImage(enhanced, s.spec!)).correct).toBe(true);
    }
  });

  it('the reader refuses a shard whose sample lacks a member, and the writer a key WebDataset would split', async () => {
    const pack = tar.pack();
    pack.entry({ name: 'k1.json', mtime: new Date(0) }, JSON.stringify({ key: 'k1' }));
    pack.entry({ name: 'k1.flawed.png', mtime: new Date(0) }, 'x');
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
    const file = path.join(root, 'broken.tar');
    writeFileSync(file, Buffer.concat(chunks));
    await expect(readGenrefShard(file).next()).rejects.toThrow(/sample 'k1' has no enhanced\.png member/);
    const w = new ShardWriter(root, 10);
    await expect(w.add({ ...samples[0]!, record: { ...samples[0]!.record, key: 'a.b' } })).rejects.toThrow(/characters other than/);
  });

  it('--compositional draws that share of prompts from the four kinds beyond GenEval, training combinations only', async () => {
    await buildGenref({ ...OPTS, count: 80, modelPrompts: 0, compositional: 0.5, out: dir('c') });
    const comp = await readAll(dir('c'));
    const kinds = comp.filter((s) => COMPOSITIONAL_TAGS.includes(s.record.tag as CompositionalTag));
    // half of 80 prompts, give or take the few candidates a build drops and replaces
    expect(kinds.length).toBeGreaterThan(25);
    expect(kinds.length).toBeLessThan(55);
    expect(new Set(kinds.map((s) => s.record.tag)).size).toBeGreaterThanOrEqual(3);
    for (const { record: r, flawed, enhanced } of comp) {
      expect(heldOutCombination(r.spec!), r.key).toBeNull();
      expect(inCheckSet(r.spec!), r.key).toBe(false);
      expect((await evaluateImage(flawed, r.spec!)).correct, r.key).toBe(false);
      expect((await evaluateImage(enhanced, r.spec!)).correct, r.key).toBe(true);
    }
    expect(readIndex(dir('c')).options).toMatchObject({ compositional: 0.5 });
  });

  it('refuses bad options before writing anything', async () => {
    await expect(buildGenref({ out: dir('e'), count: 1, seed: 0, compositional: 1.5 })).rejects.toThrow(/--compositional/);
    await expect(buildGenref({ out: dir('e'), count: -1, seed: 0 })).rejects.toThrow(UserError);
    await expect(buildGenref({ out: dir('e'), count: 1, seed: 0, shardSize: 0 })).rejects.toThrow(/--shard-size/);
    expect(() => readdirSync(dir('e'))).toThrow();
  });
});

describe('dataset export', () => {
  const params = (strategy: SearchParams['strategy']): SearchParams => ({ strategy, samples: 4, width: 2, depth: 2, seed: 3, chainHead: 'latest' });
  const prompt = 'a photo of a red circle left of a blue square';
  let reflectionRun: string;
  let noiseRun: string;
  beforeAll(async () => {
    const roles = createProceduralBackend({ defectRate: 0.8, fixRate: 0.7 });
    reflectionRun = (await runSearch({ prompt, params: params('reflection'), roles, outDir: dir('runs'), report: false })).dir;
    noiseRun = (await runSearch({ prompt, params: params('noise'), roles, outDir: dir('runs'), report: false })).dir;
  });

  it('gives one triplet per chain step, with both verifier scores, the reflection and the backends', async () => {
    const run = JSON.parse(readFileSync(path.join(reflectionRun, 'run.json'), 'utf8')) as {
      id: string;
      candidates: Array<{ id: string; parentId: string | null; seed: number; evaluation: { score: number; label: string }; reflection?: { text: string } }>;
    };
    const steps = run.candidates.filter((c) => c.parentId !== null);
    expect(steps).toHaveLength(4);
    const r = await exportRunTriplets([reflectionRun], { out: dir('x'), shardSize: 3, command: 'test' });
    expect(r.shards).toHaveLength(2);
    const got = await readAll(dir('x'));
    expect(got).toHaveLength(steps.length);
    expect(r.index.sources.run).toBe(4);
    expect(r.index.tags).toEqual({ position: 4 });
    const byId = new Map(run.candidates.map((c) => [c.id, c]));
    for (const [i, { record: s, flawed, enhanced }] of got.entries()) {
      const child = steps[i]!;
      const parent = byId.get(child.parentId!)!;
      expect(s.key).toBe(`run-${run.id}-${child.id}`);
      expect(s.source).toBe('run');
      expect(s.prompt).toBe(prompt);
      expect(s.run).toMatchObject({ id: run.id, strategy: 'reflection', parentId: parent.id, childId: child.id });
      expect(s.run!.backends).toEqual({ generator: 'procedural', verifier: 'oracle', reflector: 'procedural', refiner: 'procedural', corrector: 'procedural' });
      expect(s.flawed.score).toBe(parent.evaluation.score);
      expect(s.enhanced.score).toBe(child.evaluation.score);
      expect(s.flawed.verdict).toBe(parent.evaluation.label === 'yes');
      expect(s.enhanced.verdict).toBe(child.evaluation.label === 'yes');
      expect(s.reflection).toBe(child.reflection!.text);
      expect(s.refinedPrompt).toBe(explicitPrompt(parsePrompt(prompt)));
      expect(s.seedFlawed).toBe(parent.seed);
      expect(s.seedEnhanced).toBe(child.seed);
      expect(Buffer.from(flawed).equals(readFileSync(path.join(reflectionRun, 'images', `${parent.id}.png`)))).toBe(true);
      expect(Buffer.from(enhanced).equals(readFileSync(path.join(reflectionRun, 'images', `${child.id}.png`)))).toBe(true);
    }
  });

  it('refuses a noise run and a folder that is not a run, as a UserError with exit code 2', async () => {
    await expect(exportRunTriplets([noiseRun], { out: dir('y') })).rejects.toThrow(/no chain steps/);
    await expect(exportRunTriplets([root], { out: dir('y') })).rejects.toThrow(UserError);
    await expect(exportRunTriplets([reflectionRun, reflectionRun], { out: dir('y') })).rejects.toThrow(/given twice/);
    expect(() => readdirSync(dir('y'))).toThrow();
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      for (const d of [noiseRun, root]) {
        err.mockClear();
        expect(await main(['node', 'reflectionflow', 'dataset', 'export', d, '--out', dir('y')])).toBe(2);
        const text = err.mock.calls.map((c) => String(c[0])).join('');
        expect(text.trim().split('\n')).toHaveLength(1);
        expect(text).toMatch(/^reflectionflow: /);
      }
    } finally {
      err.mockRestore();
    }
  });
});

afterAll(() => rmSync(root, { recursive: true, force: true }));
