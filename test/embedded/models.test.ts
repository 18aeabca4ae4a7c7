import { mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { createEmbeddedBackend } from '../../src/backends/embedded/backend.js';
import { MODELS_DIR } from '../../src/backends/embedded/files.js';
import { FlowGenerator } from '../../src/backends/embedded/generator.js';
import { EmbeddedCorrector, type CorrectorOptions } from '../../src/backends/embedded/corrector.js';
import { Perception } from '../../src/backends/embedded/perception.js';
import { EmbeddedVerifier } from '../../src/backends/embedded/verifier.js';
import { SPEC_LENGTH } from '../../src/backends/embedded/spec.js';
import { testPrompts, withArticle } from '../../src/shapeworld/prompts.js';
import { renderScene } from '../../src/shapeworld/render.js';
import { PALETTE, SHAPES } from '../../src/shapeworld/shapes.js';
import { sceneForSpec } from '../../src/shapeworld/scene.js';
import { loadModel, ort, readModelCard, type ModelSession } from '../../src/backends/embedded/onnx.js';
import { pngToTensor } from '../../src/backends/embedded/image.js';
import { UserError } from '../../src/core/errors.js';

/** The shipped corrector as the embedded backend loads it (with the perception that grounds its edit region). */
const loadCorrector = async (opts: CorrectorOptions): Promise<EmbeddedCorrector> =>
  EmbeddedCorrector.load(MODELS_DIR, opts, await Perception.load(MODELS_DIR, { threads: 1 }));

describe('shipped ONNX models', () => {
  it('every shipped model loads, has a card, and the files stay small', async () => {
    const onnx = readdirSync(MODELS_DIR).filter((f) => f.endsWith('.onnx'));
    expect(onnx.sort()).toEqual(['corrector.onnx', 'generator.onnx', 'reflector.onnx', 'verifier.onnx']);
    let total = 0;
    for (const f of onnx) {
      const name = f.replace(/\.onnx$/, '');
      total += readFileSync(path.join(MODELS_DIR, f)).length;
      const { session, meta } = await loadModel<{ size: number; vocab: string[] }>(MODELS_DIR, name, 1);
      expect(meta.size).toBe(32);
      expect(session.inputNames.length).toBeGreaterThan(0);
      expect(readFileSync(path.join(MODELS_DIR, `${name}.md`), 'utf8')).toMatch(/## Reproduce[\s\S]*training\/(train|export)_\w+\.py/);
    }
    expect(total).toBeLessThan(40 * 1024 * 1024);
  });

  it('a model card reads without its model; a missing model, or a card missing or broken, is the user’s error naming the file', async () => {
    expect(readModelCard<{ kind: string }>(MODELS_DIR, 'corrector').kind).toBe('corrector');
    const dir = mkdtempSync(path.join(tmpdir(), 'rf-card-'));
    expect(() => readModelCard(dir, 'corrector')).toThrow(UserError);
    writeFileSync(path.join(dir, 'corrector.json'), '{ "kind": ');
    expect(() => readModelCard(dir, 'corrector')).toThrow(/cannot read model card .*corrector\.json/);
    await expect(loadModel(dir, 'corrector')).rejects.toThrow(/model file .*corrector\.onnx is missing/);
    symlinkSync(path.join(MODELS_DIR, 'corrector.onnx'), path.join(dir, 'corrector.onnx'));
    await expect(loadModel(dir, 'corrector')).rejects.toThrow(/cannot read model card/);
  });

  it('generator: x [B,3,32,32], t [B], tokens [B,T] → v [B,3,32,32], for any batch size', async () => {
    const { session, meta } = await loadModel<{ maxTokens: number }>(MODELS_DIR, 'generator', 1);
    expect([...session.inputNames].sort()).toEqual(['t', 'tokens', 'x']);
    expect(session.outputNames).toEqual(['v']);
    for (const b of [1, 3]) {
      const out = await session.run({
        x: new ort.Tensor('float32', new Float32Array(b * 3 * 32 * 32), [b, 3, 32, 32]),
        t: new ort.Tensor('float32', new Float32Array(b).fill(0.5), [b]),
        tokens: new ort.Tensor('int64', new BigInt64Array(b * meta.maxTokens).fill(1n), [b, meta.maxTokens]),
      });
      expect(out.v!.dims).toEqual([b, 3, 32, 32]);
      expect(Array.from(out.v!.data as Float32Array).every(Number.isFinite)).toBe(true);
    }
  });

  it('generator: same seed ⇒ same PNG bytes, alone or in a batch; other seed ⇒ other image', async () => {
    const g = await FlowGenerator.load(MODELS_DIR, { steps: 4 });
    const prompt = 'a photo of a red circle';
    const a = await g.generate({ prompt, seed: 42 });
    const [b, , c] = await Promise.all([g.generate({ prompt, seed: 42 }), g.generate({ prompt, seed: 1 }), g.generate({ prompt, seed: 2 })]);
    expect(Buffer.from(a.png).equals(Buffer.from(b!.png))).toBe(true);
    expect(Buffer.from(a.png).equals(Buffer.from(c!.png))).toBe(false);
    const meta = await sharp(Buffer.from(a.png)).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 32, 32]);
  });

  it('corrector: x, t, tokens [B,T], image [B,3,32,32], region [B,R,32,32] → v [B,3,32,32], for any batch size', async () => {
    const { session, meta } = await loadModel<{ maxTokens: number; cond: string; region: boolean; regionChannels?: number; colorHint?: object; classHint?: string[] }>(MODELS_DIR, 'corrector', 1);
    expect([...session.inputNames].sort()).toEqual(['image', 'region', 't', 'tokens', 'x']);
    expect([meta.cond, meta.region]).toEqual(['channels', true]);
    const r = (meta.regionChannels ?? 1) + (meta.colorHint ? 3 : 0) + (meta.classHint?.length ?? 0);
    for (const b of [1, 3]) {
      const out = await session.run({
        x: new ort.Tensor('float32', new Float32Array(b * 3 * 32 * 32), [b, 3, 32, 32]),
        t: new ort.Tensor('float32', new Float32Array(b).fill(0.5), [b]),
        tokens: new ort.Tensor('int64', new BigInt64Array(b * meta.maxTokens).fill(1n), [b, meta.maxTokens]),
        image: new ort.Tensor('float32', new Float32Array(b * 3 * 32 * 32).fill(0.2), [b, 3, 32, 32]),
        region: new ort.Tensor('float32', new Float32Array(b * r * 32 * 32).fill(1), [b, r, 32, 32]),
      });
      expect(out.v!.dims).toEqual([b, 3, 32, 32]);
      expect(Array.from(out.v!.data as Float32Array).every(Number.isFinite)).toBe(true);
    }
  });

  it('corrector: same image, instruction and seed ⇒ same PNG, alone or in a batch; the image and the reflection matter', async () => {
    const c = await loadCorrector({ steps: 4 });
    const scene = async (spec: Parameters<typeof sceneForSpec>[0]): Promise<{ png: Uint8Array }> => ({ png: await renderScene(sceneForSpec(spec, 3), 32) });
    const image = await scene({ include: [{ class: 'circle', count: 1, color: 'red' }] });
    const other = await scene({ include: [{ class: 'square', count: 2, color: 'blue' }] });
    const prompt = 'a red circle on the left and a blue square on the right';
    const reflection = { text: 'Add a blue square to the right of the red circle', items: ['Add a blue square to the right of the red circle'] };
    const a = await c.correct({ image, prompt, reflection, seed: 5 });
    const [b, d, e] = await Promise.all([
      c.correct({ image, prompt, reflection, seed: 5 }),
      c.correct({ image: other, prompt, reflection, seed: 5 }),
      c.correct({ image, prompt, reflection: { text: '', items: [] }, seed: 5 }),
    ]);
    expect(Buffer.from(a.png).equals(Buffer.from(b!.png))).toBe(true);
    expect(Buffer.from(a.png).equals(Buffer.from(d!.png))).toBe(false);
    expect(Buffer.from(a.png).equals(Buffer.from(e!.png))).toBe(false);
    // a reflection too long to read keeps its first instructions instead of failing
    const many = Array.from({ length: 12 }, () => 'Add a blue square to the right of the red circle');
    expect(c.encode({ prompt, reflection: { text: many.join('\n'), items: many } }).filter((t) => t !== 0).length).toBeLessThanOrEqual(c.meta.maxTokens);
  });

  it('corrector: the edit region is the reflection grounded on the perception’s objects, and it changes the drawing; without the perception it does not load', async () => {
    const c = await loadCorrector({ steps: 4 });
    const scene = sceneForSpec({ include: [{ class: 'circle', count: 1, color: 'red' }, { class: 'square', count: 1, color: 'blue' }] }, 5);
    const image = { png: await renderScene(scene, 32) };
    const circle = scene.find((o) => o.shape === 'circle')!;
    const square = scene.find((o) => o.shape === 'square')!;
    const req = { image, prompt: 'a green circle and a blue square', reflection: { text: 'Replace the red circle with a green circle', items: ['Replace the red circle with a green circle'] }, seed: 3 };
    const region = await c.region(req);
    const at = (o: { cx: number; cy: number }): number => region[Math.floor(o.cy * 32) * 32 + Math.floor(o.cx * 32)]!;
    expect([at(circle), at(square)]).toEqual([1, 0]);
    const grounded = await c.correct(req);
    expect(Buffer.from(grounded.png).equals(Buffer.from((await c.draw(req, region)).png))).toBe(true);
    expect(Buffer.from(grounded.png).equals(Buffer.from((await c.draw(req, new Float32Array(c.regionPlanes * 32 * 32))).png))).toBe(false);
    await expect(c.draw(req, new Float32Array(5))).rejects.toThrow(/edit region of/);
    await expect(EmbeddedCorrector.load(MODELS_DIR, { steps: 4 })).rejects.toThrow(/edit region.*perception/);
  });

  it('corrector silhouette: a two-channel model card may say its gray; one that cannot mean it is refused', async () => {
    const meta = JSON.parse(readFileSync(path.join(MODELS_DIR, 'corrector.json'), 'utf8')) as Record<string, unknown>;
    const dir = mkdtempSync(path.join(tmpdir(), 'rf-corrector-'));
    symlinkSync(path.join(MODELS_DIR, 'corrector.onnx'), path.join(dir, 'corrector.onnx'));
    const perception = await Perception.load(MODELS_DIR, { threads: 1 });
    writeFileSync(path.join(dir, 'corrector.json'), JSON.stringify({ ...meta, silhouette: 64 }));
    expect((await EmbeddedCorrector.load(dir, {}, perception)).meta.silhouette).toBe(64);
    for (const bad of [{ silhouette: 300 }, { silhouette: 64, regionChannels: 1 }]) {
      writeFileSync(path.join(dir, 'corrector.json'), JSON.stringify({ ...meta, ...bad }));
      await expect(EmbeddedCorrector.load(dir, {}, perception)).rejects.toThrow(/silhouette must be a gray level/);
    }
  });

  it('corrector colour hint: a two-channel card may give its palette (three more region planes); a palette that is not one is refused', async () => {
    const { classHint: _classes, ...meta } = JSON.parse(readFileSync(path.join(MODELS_DIR, 'corrector.json'), 'utf8')) as Record<string, unknown>;
    const dir = mkdtempSync(path.join(tmpdir(), 'rf-corrector-'));
    symlinkSync(path.join(MODELS_DIR, 'corrector.onnx'), path.join(dir, 'corrector.onnx'));
    const perception = await Perception.load(MODELS_DIR, { threads: 1 });
    writeFileSync(path.join(dir, 'corrector.json'), JSON.stringify({ ...meta, colorHint: PALETTE }));
    const hinted = await EmbeddedCorrector.load(dir, {}, perception);
    expect([hinted.regionLayout?.channels, hinted.regionPlanes]).toEqual([2, 5]);
    const { white: _white, ...nine } = PALETTE;
    for (const bad of [{ colorHint: nine }, { colorHint: { ...PALETTE, red: [300, 0, 0] } }, { colorHint: PALETTE, regionChannels: 1 }]) {
      writeFileSync(path.join(dir, 'corrector.json'), JSON.stringify({ ...meta, ...bad }));
      await expect(EmbeddedCorrector.load(dir, {}, perception)).rejects.toThrow(/colorHint must give each of/);
    }
  });

  it('corrector class hint: a card with a colour hint may list its classes (one more region plane each); a list that is not the six, or no colour hint, is refused', async () => {
    const meta = JSON.parse(readFileSync(path.join(MODELS_DIR, 'corrector.json'), 'utf8')) as Record<string, unknown>;
    const dir = mkdtempSync(path.join(tmpdir(), 'rf-corrector-'));
    symlinkSync(path.join(MODELS_DIR, 'corrector.onnx'), path.join(dir, 'corrector.onnx'));
    const perception = await Perception.load(MODELS_DIR, { threads: 1 });
    const reversed = [...SHAPES].reverse();
    writeFileSync(path.join(dir, 'corrector.json'), JSON.stringify({ ...meta, regionChannels: 2, colorHint: PALETTE, classHint: reversed }));
    const classed = await EmbeddedCorrector.load(dir, {}, perception);
    expect([classed.regionLayout?.classes, classed.regionPlanes]).toEqual([reversed, 11]);
    const { colorHint: _hint, ...noHint } = meta;
    for (const bad of [{ ...meta, colorHint: PALETTE, classHint: SHAPES.slice(1) }, { ...meta, colorHint: PALETTE, classHint: [...SHAPES.slice(1), 'circle', 'circle'] }, { ...noHint, classHint: [...SHAPES] }]) {
      writeFileSync(path.join(dir, 'corrector.json'), JSON.stringify(bad));
      await expect(EmbeddedCorrector.load(dir, {}, perception)).rejects.toThrow(/classHint must list each of/);
    }
  });

  it('corrector keepOutside (the default): outside the edit region the result is the previous image, exactly; inside it is drawn anew', async () => {
    const scene = sceneForSpec({ include: [{ class: 'circle', count: 1, color: 'red' }, { class: 'square', count: 1, color: 'blue' }] }, 5);
    const image = { png: await renderScene(scene, 32) };
    const req = { image, prompt: 'a green circle and a blue square', reflection: { text: 'Replace the red circle with a green circle', items: ['Replace the red circle with a green circle'] }, seed: 3 };
    const keeping = await loadCorrector({ steps: 4 });
    const redrawing = await loadCorrector({ steps: 4, keepOutside: false });
    expect(keeping.keepOutside).toBe(true);
    expect(keeping.identity).not.toBe(redrawing.identity);
    const region = await keeping.region(req);
    const inRegion = (p: number): boolean => Array.from({ length: keeping.regionLayout!.channels }, (_, c) => region[c * 1024 + p]!).some((v) => v > 0);
    const raw = async (img: { png: Uint8Array }): Promise<Buffer> => sharp(Buffer.from(img.png)).removeAlpha().raw().toBuffer();
    const before = await raw(image);
    const changed = async (img: { png: Uint8Array }, inside: boolean): Promise<number> => {
      const after = await raw(img);
      let n = 0;
      for (let p = 0; p < 1024; p++) if (inRegion(p) === inside && [0, 1, 2].some((c) => after[p * 3 + c] !== before[p * 3 + c])) n++;
      return n;
    };
    const kept = await keeping.correct(req);
    expect(await changed(kept, false)).toBe(0);
    expect(await changed(kept, true)).toBeGreaterThan(10);
    expect(await changed(await redrawing.correct(req), false)).toBeGreaterThan(10);
    // an empty region (an edit it cannot ground) keeps nothing back: the whole image is drawn
    expect(await changed(await keeping.draw(req, new Float32Array(keeping.regionPlanes * 1024)), false)).toBeGreaterThan(10);
  });

  it('corrector strength: a start below 1 stays closer to the previous image, deterministically; out of (0, 1] refused', async () => {
    const image = { png: await renderScene(sceneForSpec({ include: [{ class: 'circle', count: 1, color: 'red' }] }, 3), 32) };
    const req = { image, prompt: 'a red circle on the left and a blue square on the right', reflection: { text: 'Add a blue square', items: ['Add a blue square'] }, seed: 9 };
    const full = await loadCorrector({ steps: 4 });
    const light = await loadCorrector({ steps: 4, strength: 0.3 });
    const pixels = async (img: { png: Uint8Array }): Promise<Float32Array> => {
      const t = new Float32Array(3 * 32 * 32);
      await pngToTensor(img, 32, t, 0);
      return t;
    };
    const before = await pixels(image);
    const dist = async (img: { png: Uint8Array }): Promise<number> => {
      const after = await pixels(img);
      return after.reduce((s, v, k) => s + Math.abs(v - before[k]!), 0) / after.length;
    };
    const [a, b] = [await light.correct(req), await light.correct(req)];
    expect(Buffer.from(a.png).equals(Buffer.from(b.png))).toBe(true);
    expect(await dist(a)).toBeLessThan(await dist(await full.correct(req)));
    expect(light.identity).not.toBe(full.identity); // a resumed run never replays a call made at another strength
    await expect(loadCorrector({ strength: 0 })).rejects.toThrow(/strength must be in \(0, 1\]/);
    await expect(createEmbeddedBackend({ strength: 1.5 })).rejects.toThrow(/strength must be in \(0, 1\]/);
  });

  /** The batch size (rows) of every forward pass of a role's model, from now on; `before(pass)` runs before each (1-based). */
  const countRows = (role: FlowGenerator | EmbeddedCorrector, before: (pass: number) => void): number[] => {
    const session = (role as unknown as { session: ModelSession }).session;
    const run = session.run.bind(session);
    const rows: number[] = [];
    session.run = (feeds) => {
      rows.push(feeds.x!.dims[0]!);
      before(rows.length);
      return run(feeds);
    };
    return rows;
  };

  it('generator: a request aborted while its batch runs leaves it at the next step (its rows are computed no more); the others’ images are unchanged', async () => {
    const g = await FlowGenerator.load(MODELS_DIR, { steps: 4, threads: 1 });
    const prompt = 'a photo of a red circle';
    const [alone42, alone1] = await Promise.all([g.generate({ prompt, seed: 42 }), g.generate({ prompt, seed: 1 })]);
    const gone = [new AbortController(), new AbortController()];
    // the first request of each batch below goes away during the batch's first forward pass
    const rows = countRows(g, (pass) => (pass === 1 ? gone[0]!.abort(new Error('the client went away')) : pass === 5 && gone[1]!.abort(new Error('gone too'))));
    const [a, b, c] = await Promise.allSettled([
      g.generate({ prompt, seed: 42 }),
      g.generate({ prompt, seed: 7 }, { signal: gone[0]!.signal }),
      g.generate({ prompt, seed: 1 }),
    ]);
    // three requests × (conditional + unconditional) rows in the first step, then the two left
    expect(rows).toEqual([6, 4, 4, 4]);
    expect(b.status === 'rejected' && (b.reason as Error).message).toBe('the client went away');
    expect(a.status === 'fulfilled' && Buffer.from(a.value.png).equals(Buffer.from(alone42.png))).toBe(true);
    expect(c.status === 'fulfilled' && Buffer.from(c.value.png).equals(Buffer.from(alone1.png))).toBe(true);
    // a batch whose requests have all gone ends at the next step
    await expect(g.generate({ prompt, seed: 9 }, { signal: gone[1]!.signal })).rejects.toThrow('gone too');
    await g.generate({ prompt, seed: 10 });
    expect(rows).toEqual([6, 4, 4, 4, 2, 2, 2, 2, 2]);
  });

  it('corrector: a correction aborted while its batch runs leaves it at the next step', async () => {
    const c = await loadCorrector({ steps: 3, threads: 1 });
    const image = { png: await renderScene(sceneForSpec({ include: [{ class: 'circle', count: 1, color: 'red' }] }, 3), 32) };
    const req = { image, prompt: 'a red circle on the left and a blue square on the right', reflection: { text: 'Add a blue square', items: ['Add a blue square'] } };
    const alone = await c.correct({ ...req, seed: 5 });
    const gone = new AbortController();
    const rows = countRows(c, (pass) => pass === 1 && gone.abort(new Error('gone')));
    const [kept, dropped] = await Promise.allSettled([c.correct({ ...req, seed: 5 }), c.correct({ ...req, seed: 6 }, { signal: gone.signal })]);
    expect(rows).toEqual([4, 2, 2]);
    expect(dropped.status).toBe('rejected');
    expect(kept.status === 'fulfilled' && Buffer.from(kept.value.png).equals(Buffer.from(alone.png))).toBe(true);
  });

  it('verifier: image [B,3,32,32] + spec [B,28] → logit [B]; deterministic; a probability per image', async () => {
    const { session } = await loadModel(MODELS_DIR, 'verifier', 1);
    expect([...session.inputNames].sort()).toEqual(['image', 'spec']);
    expect(session.outputNames).toEqual(['logit']);
    for (const b of [1, 3]) {
      const spec = new BigInt64Array(b * SPEC_LENGTH);
      for (let i = 0; i < b; i++) spec.set([1n, 1n, 1n], i * SPEC_LENGTH); // a red circle
      const out = await session.run({
        image: new ort.Tensor('float32', new Float32Array(b * 3 * 32 * 32), [b, 3, 32, 32]),
        spec: new ort.Tensor('int64', spec, [b, SPEC_LENGTH]),
      });
      expect(out.logit!.dims).toEqual([b]);
    }
    const v = await EmbeddedVerifier.load(MODELS_DIR);
    const g = await FlowGenerator.load(MODELS_DIR, { steps: 4 });
    const image = await g.generate({ prompt: 'a photo of a blue square', seed: 3 });
    const e1 = await v.verify({ image, prompt: 'a photo of a blue square' });
    const e2 = await v.verify({ image, prompt: 'a photo of a blue square' });
    expect(e1).toEqual(e2);
    expect(e1.score).toBeGreaterThanOrEqual(0);
    expect(e1.score).toBeLessThanOrEqual(1);
    expect(e1.label).toBe(e1.score >= 0.5 ? 'yes' : 'no');
  });

  it('verifier: on rendered scenes of held-out combinations, the true prompt outscores its colour swap and its mirror', async () => {
    const v = await EmbeddedVerifier.load(MODELS_DIR);
    // test-split prompts (never in training): a colour pair and a relation
    const test = testPrompts();
    const attr = test.find((r) => r.tag === 'color_attr')!;
    const pos = test.find((r) => r.tag === 'position')!;
    const [a, b] = attr.include;
    const swapped = `a photo of ${withArticle(b!.color!)} ${a!.class} and ${withArticle(a!.color!)} ${b!.class}`;
    const [ref, rel] = pos.include;
    const mirror = { 'left of': 'right of', 'right of': 'left of', above: 'below', below: 'above' } as const;
    const mirrored = `a photo of ${withArticle(rel!.class)} ${mirror[rel!.position![0]]} ${withArticle(ref!.class)}`;
    for (const [record, wrong] of [
      [attr, swapped],
      [pos, mirrored],
    ] as const) {
      let wins = 0;
      for (let seed = 0; seed < 4; seed++) {
        const png = await renderScene(sceneForSpec(record, seed));
        const right = await v.verify({ image: { png }, prompt: record.prompt });
        const other = await v.verify({ image: { png }, prompt: wrong });
        if (right.score > other.score) wins++;
      }
      expect(wins, `${record.prompt} vs ${wrong}`).toBeGreaterThanOrEqual(3);
    }
  });

  it('unknown words and corrupt images are the user’s error, named', async () => {
    const roles = await createEmbeddedBackend({ steps: 2 });
    await expect(roles.generator!.generate({ prompt: 'a photo of a cat', seed: 1 })).rejects.toThrow(/'cat'.*vocabulary/);
    await expect(roles.verifier!.verify({ image: { png: new Uint8Array([1, 2, 3]) }, prompt: 'a red circle' })).rejects.toThrow(UserError);
    await expect(createEmbeddedBackend({ stepz: 3 })).rejects.toThrow(/unknown option 'stepz'/);
    await expect(createEmbeddedBackend({ steps: 0 })).rejects.toThrow(/embedded backend: option 'steps' must be an integer ≥ 1, got 0/);
  });

  it('takes concurrency, the shared role option, for each of its roles', async () => {
    const roles = await createEmbeddedBackend({ concurrency: 3 });
    expect(Object.keys(roles).sort()).toEqual(['corrector', 'generator', 'refiner', 'reflector', 'verifier']);
    for (const role of Object.values(roles)) expect(role.concurrency).toBe(3);
    expect((await createEmbeddedBackend()).generator!.concurrency).toBe(64);
  });
});

describe('model sessions of the built package', () => {
  it('run each model on a worker thread: the event loop goes on during a forward pass (in-process it stops), and the answer is the same', async () => {
    // the worker is a compiled module: dist/ (npm test builds it first)
    const built = (await import(pathToFileURL(path.resolve('dist/backends/embedded/onnx.js')).href)) as typeof import('../../src/backends/embedded/onnx.js');
    const b = 8;
    const feeds = {
      x: new ort.Tensor('float32', Float32Array.from({ length: b * 3 * 32 * 32 }, (_, i) => Math.sin(i)), [b, 3, 32, 32]),
      t: new ort.Tensor('float32', new Float32Array(b).fill(0.5), [b]),
      tokens: new ort.Tensor('int64', new BigInt64Array(b * 32).fill(1n), [b, 32]),
    };
    /** what comes first once a pass is asked for: its answer, or the next turn of the event loop */
    const order = async (session: ModelSession) => {
      const seen: string[] = [];
      const pass = session.run(feeds).then((out) => (seen.push('answer'), out));
      setImmediate(() => seen.push('event loop'));
      const out = await pass;
      await new Promise((r) => setImmediate(r));
      return { seen, out };
    };
    const worker = await order((await built.loadModel(MODELS_DIR, 'generator', 1)).session);
    const inProcess = await order((await loadModel(MODELS_DIR, 'generator', 1)).session);
    expect(worker.seen).toEqual(['event loop', 'answer']);
    expect(inProcess.seen).toEqual(['answer', 'event loop']);
    expect(worker.out.v!.dims).toEqual([b, 3, 32, 32]);
    expect(Array.from(worker.out.v!.data as Float32Array)).toEqual(Array.from(inProcess.out.v!.data as Float32Array));
  });
});
