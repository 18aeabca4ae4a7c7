import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.js';
import { runAgreementBench } from '../../src/shapeworld/bench-agreement.js';
import { detectObjects, evaluateImage } from '../../src/shapeworld/evaluate.js';
import { mulberry32, Rng } from '../../src/shapeworld/random.js';
import { DISPLAY_SIZE, MODEL_SIZE, renderScene } from '../../src/shapeworld/render.js';
import { judge, relativePosition, scoreByCategory, type Detection, type IncludeClause } from '../../src/shapeworld/rules.js';
import { applicableDefects, judgeScene, objectBox, sampleScene, sceneForSpec, type Scene } from '../../src/shapeworld/scene.js';
import { testPrompts } from '../../src/shapeworld/prompts.js';
import { BACKGROUND } from '../../src/shapeworld/shapes.js';

const key = (objs: ReadonlyArray<{ shape: string; color: string }>): string =>
  objs
    .map((o) => `${o.color} ${o.shape}`)
    .sort()
    .join(', ');

describe('random', () => {
  it('mulberry32 is deterministic and seed-sensitive', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(mulberry32(43)()).not.toBe(xs[0]);
    const r = new Rng(1);
    const ints = Array.from({ length: 200 }, () => r.int(2, 4));
    expect(new Set(ints)).toEqual(new Set([2, 3, 4]));
  });
});

describe('render → PNG → evaluate round trip', () => {
  it('recovers every object of random scenes from the pixels alone', async () => {
    expect(MODEL_SIZE).toBeGreaterThanOrEqual(32);
    let ok = 0;
    const n = 60;
    for (let s = 0; s < n; s++) {
      const scene = sampleScene(1000 + s);
      const png = await renderScene(scene);
      const meta = await sharp(png).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['png', MODEL_SIZE, MODEL_SIZE]);
      const dets = await detectObjects(png);
      if (key(dets) === key(scene)) ok++;
    }
    expect(ok).toBeGreaterThanOrEqual(n - 1);
  });

  it('judges what is painted, not what was meant: covering an object changes the verdict', async () => {
    const spec = { include: [{ class: 'star', count: 1, color: 'red' }] };
    const scene: Scene = [
      { shape: 'star', color: 'red', cx: 0.3, cy: 0.3, r: 0.16 },
      { shape: 'square', color: 'blue', cx: 0.7, cy: 0.7, r: 0.15 },
    ];
    const png = await renderScene(scene);
    expect((await evaluateImage(png, spec)).correct).toBe(true);
    // paint the star over with background
    const side = Math.round(0.4 * MODEL_SIZE);
    const patch = await sharp({ create: { width: side, height: side, channels: 3, background: { r: BACKGROUND[0], g: BACKGROUND[1], b: BACKGROUND[2] } } }).png().toBuffer();
    const painted = await sharp(png).composite([{ input: patch, left: Math.round(0.1 * MODEL_SIZE), top: Math.round(0.1 * MODEL_SIZE) }]).png().toBuffer();
    const j = await evaluateImage(new Uint8Array(painted), spec);
    expect(j.correct).toBe(false);
    expect(j.reason).toMatch(/expected star>=1, found 0/);
    expect(key(j.detections)).toBe('blue square');
    // a re-encoded copy (RGBA, other compression) reads the same
    const rgba = await sharp(png).ensureAlpha().png({ compressionLevel: 0 }).toBuffer();
    expect(key(await detectObjects(new Uint8Array(rgba)))).toBe('blue square, red star');
  });

  it('reads display-size renders too', async () => {
    const scene = sceneForSpec({ include: [{ class: 'cross', count: 1 }, { class: 'diamond', count: 1, position: ['above', 0] }] }, 5);
    const png = await renderScene(scene, DISPLAY_SIZE);
    expect((await sharp(png).metadata()).width).toBe(DISPLAY_SIZE);
    expect(key(await detectObjects(png))).toBe(key(scene));
  });

  it('localises objects: detected boxes are close to the true ones', async () => {
    const scene = sampleScene(77);
    const dets = await detectObjects(await renderScene(scene));
    for (const o of scene) {
      const d = dets.find((x) => x.shape === o.shape && x.color === o.color && Math.hypot(x.cx - o.cx, x.cy - o.cy) < 0.05);
      expect(d, `${o.color} ${o.shape}`).toBeDefined();
      const tb = objectBox(o);
      for (let k = 0; k < 4; k++) expect(Math.abs(d!.box[k]! - tb[k]!)).toBeLessThan(1.5 / MODEL_SIZE);
    }
  });
});

describe('agreement with the ground truth', () => {
  it('agrees on ≥ 99.5% of a 360-scene sample (half with one defect)', async () => {
    const report = await runAgreementBench({ n: 360, seed: 99 });
    expect(report.overall.total).toBe(360);
    expect(report.byDefect.correct!.total).toBe(180);
    expect(Object.keys(report.byCategory)).toHaveLength(6);
    expect(report.overall.accuracy, JSON.stringify(report.disagreements)).toBeGreaterThanOrEqual(0.995);
  });

  it('scenes built for a spec are right, and each defect makes them wrong', () => {
    for (const rec of testPrompts().filter((_, i) => i % 5 === 0)) {
      expect(judgeScene(sceneForSpec(rec, 1), rec).correct, rec.prompt).toBe(true);
      for (const d of applicableDefects(rec)) {
        expect(judgeScene(sceneForSpec(rec, 2, { defect: d }), rec).correct, `${rec.prompt} ${d}`).toBe(false);
      }
    }
    expect(sceneForSpec(testPrompts()[0]!, 3)).toEqual(sceneForSpec(testPrompts()[0]!, 3));
  });
});

describe('GenEval rules', () => {
  const det = (shape: Detection['shape'], color: Detection['color'], cx: number, cy: number, s = 0.1): Detection => ({
    shape,
    color,
    cx,
    cy,
    r: s,
    box: [cx - s, cy - s, cx + s, cy + s],
    score: s * s,
  });

  it('position: offset shrunk by 0.1 × summed box sizes, normalised, threshold 0.5', () => {
    const b = det('square', 'red', 0.5, 0.5).box;
    expect(relativePosition(det('circle', 'red', 0.2, 0.5).box, b)).toEqual(new Set(['left of']));
    expect(relativePosition(det('circle', 'red', 0.5, 0.9).box, b)).toEqual(new Set(['below']));
    // 45°: |dx| = |dy| = 0.3, margin 0.04 each ⇒ 0.26 / 0.424 = 0.61 on both axes
    expect(relativePosition(det('circle', 'red', 0.2, 0.2).box, b)).toEqual(new Set(['left of', 'above']));
    // offset inside the margin on both axes: no relation
    expect(relativePosition(det('circle', 'red', 0.53, 0.52).box, b)).toEqual(new Set());
    // 30° off the axis: dy 0.2, dx 0.3464 → (0.2-0.04)/0.4 = 0.4 (not below), (0.3464-0.04)/0.4 = 0.77 (right of)
    expect(relativePosition(det('circle', 'red', 0.8464, 0.7).box, b)).toEqual(new Set(['right of']));
  });

  it('include, colour, position and exclude clauses', () => {
    const dets = [det('circle', 'red', 0.2, 0.5), det('square', 'blue', 0.7, 0.5), det('circle', 'green', 0.5, 0.2)];
    expect(judge(dets, { include: [{ class: 'circle', count: 2 }] }).correct).toBe(true);
    expect(judge(dets, { include: [{ class: 'circle', count: 2 }], exclude: [{ class: 'circle', count: 3 }] }).correct).toBe(true);
    const ex = judge(dets, { include: [{ class: 'circle', count: 1 }], exclude: [{ class: 'circle', count: 2 }] });
    expect([ex.correct, ex.reason]).toEqual([false, 'expected circle<2, found 2']);
    expect(judge(dets, { include: [{ class: 'square', count: 1, color: 'blue' }] }).correct).toBe(true);
    const wrong = judge(dets, { include: [{ class: 'square', count: 1, color: 'red' }] });
    expect(wrong.reason).toBe('expected red square>=1, found 0 red; and 1 blue');
    const pos: { include: IncludeClause[] } = { include: [{ class: 'square', count: 1 }, { class: 'circle', count: 1, color: 'red', position: ['left of', 0] }] };
    expect(judge(dets, pos).correct).toBe(true);
    pos.include[1]!.position = ['right of', 0];
    const pv = judge(dets, pos);
    expect(pv.correct).toBe(false);
    expect(pv.reason).toBe('expected circle right of target, found left of target');
    expect([pv.satisfied, pv.clauses]).toEqual([1, 2]);
    const noTarget = judge(dets, { include: [{ class: 'star', count: 1 }, { class: 'circle', count: 1, position: ['above', 0] }] });
    expect(noTarget.reason).toBe('expected star>=1, found 0\nno target for circle to be above');
  });

  it('scores per category and overall as the mean of category accuracies', () => {
    const s = scoreByCategory([
      { tag: 'colors', correct: true },
      { tag: 'colors', correct: false },
      { tag: 'position', correct: true },
      { tag: 'single_object', correct: true },
    ]);
    expect(Object.keys(s.categories)).toEqual(['single_object', 'colors', 'position']);
    expect(s.categories.colors).toEqual({ correct: 1, total: 2, accuracy: 0.5 });
    expect(s.overall).toBeCloseTo((1 + 0.5 + 1) / 3, 10);
    expect(s.images).toBe(4);
  });
});

describe('errors', () => {
  it('an unreadable or corrupt PNG is a UserError naming it', async () => {
    const good = await renderScene(sampleScene(1));
    await expect(detectObjects(new Uint8Array([1, 2, 3, 4]), 'sample-7.png')).rejects.toThrow(UserError);
    await expect(detectObjects(new Uint8Array([1, 2, 3, 4]), 'sample-7.png')).rejects.toThrow(/cannot read image sample-7\.png/);
    await expect(detectObjects(good.slice(0, 60), 'cut.png')).rejects.toThrow(/cannot read image cut\.png/);
  });

  it('a record naming an unknown class or colour is a UserError naming it', async () => {
    const png = await renderScene(sampleScene(2));
    await expect(evaluateImage(png, { include: [{ class: 'dog', count: 1 }] })).rejects.toThrow(UserError);
    await expect(evaluateImage(png, { include: [{ class: 'dog', count: 1 }] })).rejects.toThrow(/class 'dog'/);
    await expect(evaluateImage(png, { include: [{ class: 'star', count: 1, color: 'teal' }] })).rejects.toThrow(/color 'teal'/);
    await expect(evaluateImage(png, { include: [{ class: 'star', count: 1 }], exclude: [{ class: 'cat', count: 2 }] })).rejects.toThrow(/class 'cat'/);
  });
});
