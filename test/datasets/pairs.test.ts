import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DatasetWriter, shapeWorldVocab } from '../../src/datasets/images.js';
import { AUX_GRID, auxGrid, OBJECT_SLOTS, writeVerifierPairs } from '../../src/datasets/pairs.js';
import { encodePrompt, SPEC_LENGTH } from '../../src/backends/embedded/spec.js';
import { COLORS, SHAPES } from '../../src/shapeworld/shapes.js';
import { MODEL_SIZE, renderScene } from '../../src/shapeworld/render.js';
import { sceneForSpec } from '../../src/shapeworld/scene.js';
import { trainPrompts } from '../../src/shapeworld/prompts.js';
import { evaluateImage } from '../../src/shapeworld/evaluate.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'rf-pairs-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('auxGrid', () => {
  it('marks the cells an object covers with its class and colour ids, and nothing else', () => {
    const g = auxGrid([{ shape: 'star', color: 'blue', cx: 0.25, cy: 0.75, r: 0.1, box: [0.15, 0.65, 0.35, 0.85], score: 0.03 }]);
    const at = (x: number, y: number) => [g[y * AUX_GRID + x], g[AUX_GRID * AUX_GRID + y * AUX_GRID + x]];
    expect(at(2, 6)).toEqual([SHAPES.indexOf('star') + 1, COLORS.indexOf('blue') + 1]);
    expect(at(6, 1)).toEqual([0, 0]);
    const marked = [...g.subarray(0, AUX_GRID * AUX_GRID)].filter((v) => v !== 0).length;
    expect(marked).toBeGreaterThan(0);
    expect(marked).toBeLessThanOrEqual(4);
  });
});

describe('writeVerifierPairs', () => {
  it('judges each image against its own and related prompts, keeping pairs grouped by image', async () => {
    // a sample folder as a stopped `dataset images --kind verifier` leaves it: no meta.json, a torn last line
    const samples = tmp();
    const writer = new DatasetWriter(samples, shapeWorldVocab(), MODEL_SIZE, true);
    const recs = trainPrompts({ count: 3, seed: 5 });
    const ownLabels: number[] = [];
    for (const [i, r] of recs.entries()) {
      const png = await renderScene(sceneForSpec(r, 100 + i));
      const label = (await evaluateImage(png, r)).correct ? 1 : 0;
      ownLabels.push(label);
      await writer.add({ record: r, png, label });
    }
    appendFileSync(path.join(samples, 'records.jsonl'), '{"tag":"col');

    const out = tmp();
    const per = 4;
    const r = await writeVerifierPairs(out, { sampleDirs: [samples], rendered: 6, promptsPerImage: per, seed: 3 });
    expect(r.images).toBe(9);
    expect(r.pairs).toBe(9 * per);
    const meta = JSON.parse(readFileSync(path.join(out, 'meta.json'), 'utf8'));
    expect(meta).toMatchObject({ count: 36, sampledImages: 3, renderedImages: 6, promptsPerImage: per });
    const groups = new Int32Array(new Uint8Array(readFileSync(path.join(out, 'groups.i32'))).buffer);
    const own = readFileSync(path.join(out, 'own.u8'));
    const labels = readFileSync(path.join(out, 'labels.u8'));
    const aux = readFileSync(path.join(out, 'aux.u8'));
    const images = readFileSync(path.join(out, 'images.u8'));
    const records = readFileSync(path.join(out, 'records.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(images.length).toBe(36 * MODEL_SIZE * MODEL_SIZE * 3);
    expect(aux.length).toBe(36 * 2 * AUX_GRID * AUX_GRID);
    for (let i = 0; i < 36; i++) {
      expect(groups[i]).toBe(Math.floor(i / per));
      expect(own[i]).toBe(i % per === 0 ? 1 : 0);
    }
    // sample images keep their recorded labels and pixels
    for (let k = 0; k < 3; k++) {
      expect(labels[k * per]).toBe(ownLabels[k]);
      expect(records[k * per].prompt).toBe(recs[k]!.prompt);
    }
    // a prompt naming a class the image's detection map lacks is never labelled a match
    for (let i = 0; i < 36; i++) {
      const grid = aux.subarray(i * 2 * AUX_GRID * AUX_GRID, i * 2 * AUX_GRID * AUX_GRID + AUX_GRID * AUX_GRID);
      const present = new Set([...grid].filter((v) => v > 0).map((v) => SHAPES[v - 1]));
      const named = SHAPES.filter((s) => new RegExp(`\\b${s}(e?s)?\\b`).test(records[i].prompt));
      if (named.some((s) => !present.has(s))) expect(labels[i], records[i].prompt).toBe(0);
    }
    expect(r.positives).toBeGreaterThan(0);
    expect(r.positives).toBeLessThan(36);

    // the module verifier's inputs: each pair's prompt parsed, and the image's detections as rows
    const spec = new Int32Array(new Uint8Array(readFileSync(path.join(out, 'spec.i32'))).buffer);
    const objects = new Float32Array(new Uint8Array(readFileSync(path.join(out, 'objects.f32'))).buffer);
    expect(spec.length).toBe(36 * SPEC_LENGTH);
    expect(objects.length).toBe(36 * OBJECT_SLOTS * 6);
    const K = SHAPES.length;
    const fits = new Float32Array(new Uint8Array(readFileSync(path.join(out, 'fits.f32'))).buffer);
    expect(fits.length).toBe(36 * OBJECT_SLOTS * K);
    expect(meta.fits).toEqual({ slots: OBJECT_SLOTS, classes: [...SHAPES] });
    expect(meta.spec).toMatchObject({ version: 1, length: SPEC_LENGTH, mismatches: 0 });
    for (let i = 0; i < 36; i++) {
      expect([...spec.subarray(i * SPEC_LENGTH, (i + 1) * SPEC_LENGTH)]).toEqual([...encodePrompt(records[i].prompt)]);
      const rows = objects.subarray(i * OBJECT_SLOTS * 6, (i + 1) * OBJECT_SLOTS * 6);
      // every detected class (from the aux map) has a row, and every row lies inside the image
      const grid = aux.subarray(i * 2 * AUX_GRID * AUX_GRID, i * 2 * AUX_GRID * AUX_GRID + AUX_GRID * AUX_GRID);
      const rowClasses = new Set<number>();
      for (let k = 0; k < OBJECT_SLOTS; k++) {
        const [cls, col, cx, cy, w, h] = rows.subarray(k * 6, k * 6 + 6);
        if (cls === 0) continue;
        rowClasses.add(cls!);
        expect(col).toBeGreaterThan(0);
        for (const v of [cx, cy, w, h]) expect(v! > 0 && v! < 1).toBe(true);
      }
      expect([...rowClasses].sort()).toEqual([...new Set([...grid].filter((v) => v > 0))].sort());
      // the pairs of one image share its rows
      if (i % per !== 0) expect([...rows]).toEqual([...objects.subarray((i - 1) * OBJECT_SLOTS * 6, i * OBJECT_SLOTS * 6)]);
      // each row's fits: a soft IoU per class, the row's own class the best of them; none for an empty row
      const fitted = fits.subarray(i * OBJECT_SLOTS * K, (i + 1) * OBJECT_SLOTS * K);
      for (let k = 0; k < OBJECT_SLOTS; k++) {
        const f = [...fitted.subarray(k * K, (k + 1) * K)];
        if (rows[k * 6] === 0) {
          expect(f.every((v) => v === 0)).toBe(true);
          continue;
        }
        for (const v of f) expect(v >= 0 && v <= 1).toBe(true);
        expect(f.indexOf(Math.max(...f)) + 1).toBe(rows[k * 6]);
      }
    }
  });
});
