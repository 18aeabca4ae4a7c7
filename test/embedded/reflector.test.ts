import { describe, expect, it } from 'vitest';
import { MODELS_DIR } from '../../src/backends/embedded/files.js';
import { decodeObjectMap, DEFAULT_DECODE, Perception, type PerceptionMaps } from '../../src/backends/embedded/perception.js';
import { EmbeddedReflector, editKey, escalate, reflectOn } from '../../src/backends/embedded/reflector.js';
import { applyEditsToDetections, refinePrompt } from '../../src/shapeworld/refine.js';
import { loadModel, ort } from '../../src/backends/embedded/onnx.js';
import { pngToTensor } from '../../src/backends/embedded/image.js';
import { applyEdit, parseEdit, planEdits, type Edit } from '../../src/shapeworld/edits.js';
import { parsePrompt, testPrompts } from '../../src/shapeworld/prompts.js';
import { renderScene } from '../../src/shapeworld/render.js';
import { sceneDetections, sceneForSpec } from '../../src/shapeworld/scene.js';
import { COLORS, SHAPES } from '../../src/shapeworld/shapes.js';
import { Rng } from '../../src/shapeworld/random.js';

const G = 8;
const CH = 1 + SHAPES.length + COLORS.length + 4;

/** A hand-made object map: objects at cells, everything else empty. */
function map(objects: Array<{ gx: number; gy: number; shape: string; color: string; p?: number }>): PerceptionMaps {
  const m = new Float32Array(CH * G * G).fill(-8);
  for (const o of objects) {
    const cell = o.gy * G + o.gx;
    m[cell] = Math.log((o.p ?? 0.95) / (1 - (o.p ?? 0.95)));
    m[(1 + SHAPES.indexOf(o.shape as never)) * G * G + cell] = 5;
    m[(1 + SHAPES.length + COLORS.indexOf(o.color as never)) * G * G + cell] = 5;
    for (let k = 0; k < 4; k++) m[(1 + SHAPES.length + COLORS.length + k) * G * G + cell] = 0; // offset 0.5, size 0.5
  }
  return { objects: m };
}

const SG = 16;
/**
 * A hand-made shape reader map: a class (or 'none') on the 3 × 3 reader cells around each given cell, as the reader
 * was trained to answer, or on that one cell (`one`); undecided elsewhere.
 */
function shapes(reads: Array<{ sx: number; sy: number; shape: string; one?: boolean }>): Float32Array {
  const m = new Float32Array((SHAPES.length + 1) * SG * SG);
  for (const r of reads) {
    const k = r.shape === 'none' ? SHAPES.length : SHAPES.indexOf(r.shape as never);
    const reach = r.one ? 0 : 1;
    for (let y = r.sy - reach; y <= r.sy + reach; y++) for (let x = r.sx - reach; x <= r.sx + reach; x++) m[k * SG * SG + y * SG + x] = 6;
  }
  return m;
}

describe('perception: the object map read as objects', () => {
  it('decodes class, colour, centre and confidence; merges one object seen in two cells', () => {
    const dets = decodeObjectMap(map([{ gx: 1, gy: 2, shape: 'star', color: 'red' }, { gx: 6, gy: 6, shape: 'circle', color: 'blue', p: 0.7 }]), G);
    expect(dets.map((d) => `${d.color} ${d.shape}`)).toEqual(['red star', 'blue circle']);
    expect(dets[0]!.cx).toBeCloseTo(1.5 / 8, 5);
    expect(dets[0]!.cy).toBeCloseTo(2.5 / 8, 5);
    expect(dets[1]!.score).toBeCloseTo(0.7, 5);
    // below the centre threshold: nothing
    expect(decodeObjectMap(map([{ gx: 3, gy: 3, shape: 'star', color: 'red', p: 0.3 }]), G)).toEqual([]);
    // two adjacent cells of one red star are one object; a blue star there is another
    const twice = decodeObjectMap(map([{ gx: 3, gy: 3, shape: 'star', color: 'red' }, { gx: 3, gy: 4, shape: 'star', color: 'red', p: 0.8 }]), G);
    expect(twice).toHaveLength(1);
    // (cells 1/8 apart are farther than the merge distance only when they are not neighbours)
    expect(decodeObjectMap(map([{ gx: 1, gy: 1, shape: 'star', color: 'red' }, { gx: 5, gy: 5, shape: 'star', color: 'red' }]), G)).toHaveLength(2);
  });

  it('takes the class from the shape reader at the centre, and no object where the reader says none', () => {
    // two objects the map reads as stars, centred at (1.5/8, 2.5/8) and (6.5/8, 6.5/8): reader cells (3, 5) and (13, 13)
    const objects = map([{ gx: 1, gy: 2, shape: 'star', color: 'red' }, { gx: 6, gy: 6, shape: 'star', color: 'blue' }]).objects;
    const read = (s: Float32Array) => decodeObjectMap({ objects, shapes: s }, G).map((d) => `${d.color} ${d.shape}`);
    expect(read(shapes([{ sx: 3, sy: 5, shape: 'diamond' }, { sx: 13, sy: 13, shape: 'circle' }]))).toEqual(['red diamond', 'blue circle']);
    expect(read(shapes([{ sx: 3, sy: 5, shape: 'none' }, { sx: 13, sy: 13, shape: 'star' }]))).toEqual(['blue star']);
    // decoded without the reader: the map's classes, nothing dropped
    const noneAndCircle = shapes([{ sx: 3, sy: 5, shape: 'none' }, { sx: 13, sy: 13, shape: 'circle' }]);
    const plain = decodeObjectMap({ objects, shapes: noneAndCircle }, G, { ...DEFAULT_DECODE, noObject: 2, classFrom: 'map' });
    expect(plain.map((d) => `${d.color} ${d.shape}`)).toEqual(['red star', 'blue star']);
    // the reader is read over the 3 × 3 cells around the centre: a neighbour counts, a cell two away does not
    const star = { sx: 13, sy: 13, shape: 'star' };
    expect(read(shapes([{ sx: 4, sy: 6, shape: 'diamond', one: true }, star]))).toContain('red diamond');
    expect(read(shapes([{ sx: 5, sy: 5, shape: 'diamond', one: true }, star]))).not.toContain('red diamond');
    // the centre's cell and two neighbours outvote one neighbour
    const votes = [[3, 5], [2, 5], [3, 4]].map(([sx, sy]) => ({ sx: sx!, sy: sy!, shape: 'circle', one: true }));
    expect(read(shapes([...votes, { sx: 4, sy: 5, shape: 'diamond', one: true }, star]))).toContain('red circle');
    // read at the centre's cell only, the neighbour does not count
    const one = (s: Float32Array) => decodeObjectMap({ objects, shapes: s }, G, { ...DEFAULT_DECODE, readerWindow: 1 }).map((d) => `${d.color} ${d.shape}`);
    expect(one(shapes([{ sx: 4, sy: 5, shape: 'diamond', one: true }, star]))).not.toContain('red diamond');
  });

  it('reads one image object once: the reflector and refiner of a round share the reading', async () => {
    const perception = await Perception.load(MODELS_DIR, { threads: 1 });
    const image = { png: await renderScene(sceneForSpec(parsePrompt('a red circle'), 1, { distractorRate: 0 })) };
    const first = perception.detect(image);
    expect(perception.detect(image)).toBe(first);
    expect(await perception.detect({ png: image.png })).toEqual(await first);
  });

  it('looks at each image and its mirror (the default): a mirrored image is read as the mirror of its reading', async () => {
    const both = await Perception.load(MODELS_DIR, { threads: 1 });
    const once = await Perception.load(MODELS_DIR, { threads: 1, flip: false });
    const scene = sceneForSpec(parsePrompt('a photo of a red circle left of a blue star'), 4, { distractorRate: 0 });
    const png = await renderScene(scene);
    const mirroredPng = await renderScene(scene.map((o) => ({ ...o, cx: 1 - o.cx })));
    const pixels = async (p: Uint8Array): Promise<Float32Array> => {
      const t = new Float32Array(3 * 32 * 32);
      await pngToTensor({ png: p }, 32, t, 0);
      return t;
    };
    const [a, b] = await both.objectMaps([await pixels(png), await pixels(mirroredPng)]);
    const [c] = await once.objectMaps([await pixels(png)]);
    expect(a).not.toEqual(c); // two looks are not one
    // cell (gx, gy) of one map is cell (7 − gx, gy) of the other, centre logits alike (the renders mirror to a pixel)
    const centre = (m: PerceptionMaps, gx: number, gy: number): number => m.objects[gy * G + gx]!;
    let diff = 0;
    for (let gy = 0; gy < G; gy++) for (let gx = 0; gx < G; gx++) diff = Math.max(diff, Math.abs(centre(a!, gx, gy) - centre(b!, G - 1 - gx, gy)));
    expect(diff).toBeLessThan(1.5);
    // the shape reader's maps (16 × 16) mirror the same way: its "no object" logit at the two objects' centres
    const none = (m: PerceptionMaps, x: number, y: number): number => m.shapes![SHAPES.length * SG * SG + Math.floor(y * SG) * SG + Math.floor(x * SG)]!;
    for (const o of scene) expect(Math.abs(none(a!, o.cx, o.cy) - none(b!, 1 - o.cx, o.cy))).toBeLessThan(1.5);
    const read = (m: PerceptionMaps) => decodeObjectMap(m, G).map((d) => ({ what: `${d.color} ${d.shape}`, cx: d.cx })).sort((x, y) => x.what.localeCompare(y.what));
    const [ra, rb] = [read(a!), read(b!)];
    expect(ra.map((d) => d.what)).toEqual(['blue star', 'red circle']);
    expect(rb.map((d) => d.what)).toEqual(ra.map((d) => d.what));
    ra.forEach((d, k) => expect(Math.abs(d.cx - (1 - rb[k]!.cx))).toBeLessThan(0.05));
  });

  it('the shipped reflector model: image [B,3,32,32] → objects [B,21,8,8] and shapes [B,7,16,16], deterministic', async () => {
    const { session, meta } = await loadModel<{ shapeGrid?: number }>(MODELS_DIR, 'reflector', 1);
    expect(meta.shapeGrid).toBe(SG);
    for (const b of [1, 3]) {
      const x = new Float32Array(b * 3 * 32 * 32).map((_, i) => Math.sin(i) * 0.5);
      const run = async () => await session.run({ image: new ort.Tensor('float32', x, [b, 3, 32, 32]) });
      const a = await run();
      expect(a.objects!.dims).toEqual([b, CH, 8, 8]);
      expect(a.shapes!.dims).toEqual([b, SHAPES.length + 1, SG, SG]);
      const again = await run();
      for (const k of ['objects', 'shapes']) expect([...(again[k]!.data as Float32Array)]).toEqual([...(a[k]!.data as Float32Array)]);
    }
  });
});

describe('reflection from what is seen', () => {
  it('writes the edits that would make the image right, none when it is right', () => {
    const spec = parsePrompt('a red circle left of a blue square');
    const ok = sceneDetections(sceneForSpec(spec, 1, { distractorRate: 0 }));
    expect(reflectOn(ok, spec).items).toEqual([]);
    const missing = ok.filter((d) => d.shape !== 'circle');
    expect(reflectOn(missing, spec).items).toEqual(['Add a red circle to the left of the blue square']);
  });

  it('does not repeat an instruction the last round already gave: a failed move becomes remove and add', () => {
    const move: Edit = { op: 'move', object: { shape: 'star', color: 'red' }, relation: { rel: 'above', ref: { shape: 'cross', color: 'blue' } } };
    expect(escalate([move], []).map(editKey)).toEqual([editKey(move)]);
    const again = escalate([move], [move]);
    expect(again.map((e) => e.op)).toEqual(['remove', 'add']);
    const spec = parsePrompt('a red star above a blue cross');
    const below = [
      { shape: 'cross', color: 'blue', cx: 0.5, cy: 0.3, r: 0.1, box: [0.4, 0.2, 0.6, 0.4], score: 1 },
      { shape: 'star', color: 'red', cx: 0.5, cy: 0.8, r: 0.1, box: [0.4, 0.7, 0.6, 0.9], score: 1 },
    ] as const;
    const first = reflectOn(below as never, spec);
    expect(first.items).toEqual(['Move the red star above the blue cross']);
    expect(reflectOn(below as never, spec, first).items).toEqual(['Remove the red star', 'Add a red star above the blue cross']);
  });

  it('on renders of test-split prompts, the learned reflector is silent on correct scenes and names a missing object', async () => {
    const reflector = new EmbeddedReflector(await Perception.load(MODELS_DIR, { threads: 1 }));
    const records = testPrompts().filter((_, i) => i % 9 === 0).slice(0, 40);
    let silent = 0;
    let named = 0;
    for (const [i, rec] of records.entries()) {
      const good = { png: await renderScene(sceneForSpec(rec, i, { distractorRate: 0 })) };
      if ((await reflector.reflect({ image: good, prompt: rec.prompt, currentPrompt: rec.prompt })).items.length === 0) silent++;
      const badScene = sceneForSpec(rec, i, { defect: 'missing', distractorRate: 0 });
      const truth = planEdits(sceneDetections(badScene), rec).map(editKey);
      const got = (await reflector.reflect({ image: { png: await renderScene(badScene) }, prompt: rec.prompt, currentPrompt: rec.prompt })).items;
      if (got.map(parseEdit).some((e) => e && truth.includes(editKey(e)))) named++;
    }
    expect(silent / records.length).toBeGreaterThanOrEqual(0.8);
    expect(named / records.length).toBeGreaterThanOrEqual(0.7);
  });
});

describe('the embedded refiner', () => {
  it('applies the reflection to what is seen, then writes a layout that satisfies the prompt and parses to its objects', () => {
    const spec = parsePrompt('a red star above a blue cross');
    const seen = [
      { shape: 'cross', color: 'blue', cx: 0.2, cy: 0.3, r: 0.1, box: [0.1, 0.2, 0.3, 0.4], score: 1 },
      { shape: 'star', color: 'green', cx: 0.8, cy: 0.8, r: 0.1, box: [0.7, 0.7, 0.9, 0.9], score: 1 },
    ] as never;
    const edits = planEdits(seen, spec);
    expect(applyEditsToDetections(seen, edits).map((d) => `${d.color} ${d.shape}`)).toContain('blue cross');
    const text = refinePrompt(spec, seen, edits);
    expect(text).toMatch(/red star at the top.* blue cross at the bottom|blue cross at the bottom.* red star at the top/);
    expect(parsePrompt(text).include.map((c) => `${c.color} ${c.class}`).sort()).toEqual(['blue cross', 'red star']);
  });

  it('takes "one circle" to be the largest, as the corrector that carries the edit out does', () => {
    const circle = (color: string, r: number, cx: number) => ({ shape: 'circle', color, cx, cy: 0.5, r, box: [cx - r, 0.5 - r, cx + r, 0.5 + r], score: 1 });
    const seen = [circle('red', 0.08, 0.2), circle('blue', 0.14, 0.5), circle('green', 0.1, 0.8)] as never;
    const edits = [{ op: 'remove' as const, object: { shape: 'circle' as const } }];
    expect(applyEditsToDetections(seen, edits).map((d) => d.color)).toEqual(['red', 'green']);
    const scene = (seen as Array<{ shape: 'circle'; color: 'red'; cx: number; cy: number; r: number }>).map(({ shape, color, cx, cy, r }) => ({ shape, color, cx, cy, r }));
    expect(applyEdit(scene, edits[0]!, new Rng(1))!.map((o) => o.color)).toEqual(['red', 'green']);
  });

  it('every refined prompt parses to the prompt\'s objects and fits the shipped generator', async () => {
    const { readFileSync } = await import('node:fs');
    const { Tokenizer } = await import('../../src/backends/embedded/tokenizer.js');
    const { compositionalCheckPrompts } = await import('../../src/shapeworld/compositional.js');
    const { canonicalSpec } = await import('../../src/backends/embedded/spec.js');
    const meta = JSON.parse(readFileSync(`${MODELS_DIR}/generator.json`, 'utf8')) as { vocab: string[]; maxTokens: number };
    const tok = new Tokenizer(meta.vocab, meta.maxTokens);
    const objects = (spec: { include: Array<{ class: string; color?: string; count: number }> }) =>
      spec.include.flatMap((c) => Array.from({ length: c.count }, () => `${c.color ?? '*'} ${c.class}`)).sort();
    for (const [i, rec] of [...testPrompts(), ...compositionalCheckPrompts()].entries()) {
      const spec = canonicalSpec(parsePrompt(rec.prompt));
      for (const defect of [null, 'missing'] as const) {
        const scene = sceneForSpec(rec, i, { defect });
        const seen = sceneDetections(scene);
        const text = refinePrompt(spec, seen, planEdits(seen, spec));
        const back = parsePrompt(text);
        const named = back.include.map((c) => ({ ...c, color: c.color ?? spec.include.find((s) => s.class === c.class && !s.color)?.color }));
        expect(objects({ include: named }), `${rec.prompt} → ${text}`).toEqual(objects(spec));
        expect(() => tok.encode(text)).not.toThrow();
      }
    }
  });
});
