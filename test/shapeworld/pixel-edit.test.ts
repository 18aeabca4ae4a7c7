import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { detectObjects, evaluateImage } from '../../src/shapeworld/evaluate.js';
import { editPixels } from '../../src/shapeworld/pixel-edit.js';
import { Rng } from '../../src/shapeworld/random.js';
import { MODEL_SIZE, renderScene } from '../../src/shapeworld/render.js';
import type { Scene, SceneObject } from '../../src/shapeworld/scene.js';
import { BACKGROUND } from '../../src/shapeworld/shapes.js';

const raw = async (png: Uint8Array): Promise<Uint8Array> => new Uint8Array(await sharp(png).removeAlpha().raw().toBuffer());

/** Pixels inside `o`'s circumcircle grown by one pixel (what an edit of `o` may touch). */
function near(o: SceneObject, x: number, y: number): boolean {
  const px = (x + 0.5) / MODEL_SIZE;
  const py = (y + 0.5) / MODEL_SIZE;
  return Math.hypot(px - o.cx, py - o.cy) <= 1.05 * o.r + 1.5 / MODEL_SIZE;
}

const scene: Scene = [
  { shape: 'circle', color: 'red', cx: 0.25, cy: 0.3, r: 0.1 },
  { shape: 'square', color: 'blue', cx: 0.7, cy: 0.3, r: 0.1 },
  { shape: 'triangle', color: 'yellow', cx: 0.5, cy: 0.75, r: 0.1 },
];

describe('editPixels: an edit carried out on the image itself', () => {
  it('removes an object by painting the background over it and leaves every other pixel as it was', async () => {
    const png = await renderScene(scene);
    const res = await editPixels(png, [{ op: 'remove', object: { shape: 'square', color: 'blue' } }], new Rng(1));
    expect(res).not.toBeNull();
    const [a, b] = await Promise.all([raw(png), raw(res!.png)]);
    let outside = 0;
    let inside = 0;
    for (let y = 0; y < MODEL_SIZE; y++) {
      for (let x = 0; x < MODEL_SIZE; x++) {
        const q = 3 * (y * MODEL_SIZE + x);
        const diff = a[q] !== b[q] || a[q + 1] !== b[q + 1] || a[q + 2] !== b[q + 2];
        if (near(scene[1]!, x, y)) {
          if (b[q] === BACKGROUND[0] && b[q + 1] === BACKGROUND[1] && b[q + 2] === BACKGROUND[2]) inside++;
        } else if (diff) outside++;
      }
    }
    expect(outside).toBe(0);
    expect(res!.changed).toBeGreaterThan(20);
    const dets = await detectObjects(res!.png);
    expect(dets.map((d) => `${d.color} ${d.shape}`).sort()).toEqual(['red circle', 'yellow triangle']);
    expect(inside).toBeGreaterThan(0);
  });

  it('recolours and re-classes in place, and adds or moves objects where the relation asks', async () => {
    const png = await renderScene(scene);
    const recolour = await editPixels(png, [{ op: 'replace', object: { shape: 'circle', color: 'red' }, with: { shape: 'circle', color: 'green' } }], new Rng(2));
    const d1 = await detectObjects(recolour!.png);
    expect(d1.find((d) => d.shape === 'circle')?.color).toBe('green');
    expect(Math.abs(d1.find((d) => d.shape === 'circle')!.cx - 0.25)).toBeLessThan(0.03);

    const reclass = await editPixels(png, [{ op: 'replace', object: { shape: 'triangle', color: 'yellow' }, with: { shape: 'star', color: 'yellow' } }], new Rng(3));
    expect((await detectObjects(reclass!.png)).map((d) => `${d.color} ${d.shape}`).sort()).toEqual(['blue square', 'red circle', 'yellow star']);

    const add = await editPixels(
      png,
      [{ op: 'add', object: { shape: 'diamond', color: 'purple' }, relation: { rel: 'below', ref: { shape: 'square', color: 'blue' } } }],
      new Rng(4),
    );
    const j = await evaluateImage(add!.png, { include: [{ class: 'square', count: 1, color: 'blue' }, { class: 'diamond', count: 1, color: 'purple', position: ['below', 0] }] });
    expect(j.correct).toBe(true);
    expect(add!.after).toHaveLength(4);

    const move = await editPixels(png, [{ op: 'move', object: { shape: 'circle', color: 'red' }, relation: { rel: 'below', ref: { shape: 'triangle', color: 'yellow' } } }], new Rng(5));
    expect(move).not.toBeNull();
    const jm = await evaluateImage(move!.png, { include: [{ class: 'triangle', count: 1 }, { class: 'circle', count: 1, color: 'red', position: ['below', 0] }] });
    expect(jm.correct).toBe(true);
    // the square was not touched: its pixels are bit for bit the same
    const [a, b] = await Promise.all([raw(png), raw(move!.png)]);
    for (let y = 0; y < MODEL_SIZE; y++) {
      for (let x = 0; x < MODEL_SIZE; x++) {
        if (!near(scene[1]!, x, y)) continue;
        const q = 3 * (y * MODEL_SIZE + x);
        expect([b[q], b[q + 1], b[q + 2]]).toEqual([a[q], a[q + 1], a[q + 2]]);
      }
    }
  });

  it('is deterministic, and refuses an edit of an object the image does not hold', async () => {
    const png = await renderScene(scene);
    const edit = [{ op: 'add', object: { shape: 'cross', color: 'pink' } }] as const;
    const [x, y] = await Promise.all([editPixels(png, edit, new Rng(9)), editPixels(png, edit, new Rng(9))]);
    expect(Buffer.from(x!.png).equals(Buffer.from(y!.png))).toBe(true);
    expect(await editPixels(png, [{ op: 'remove', object: { shape: 'star' } }], new Rng(1))).toBeNull();
  });
});
