/**
 * Edits carried out on an image's own pixels: what a perfect corrector would return. The image is segmented
 * (evaluate.ts), its objects become a scene, the edits are applied to that scene (edits.ts, the same placement rules
 * the procedural corrector follows), and only what changed is repainted: an object that left or changed is painted
 * over with the background, one that arrived or changed is drawn in, anti-aliased as the renderer draws it. Every
 * other pixel keeps its value, so the result is the input image with a local change — generator texture, blur and
 * debris included. Images larger than the evaluator's working size (64 px) come back at that size.
 */
import sharp from 'sharp';
import { applyEdit, type Edit } from './edits.js';
import { segmentObjects } from './evaluate.js';
import type { Rng } from './random.js';
import { sameObject as same, type Scene, type SceneObject } from './scene.js';
import { BACKGROUND, PALETTE, shapeSvg } from './shapes.js';

const UNITS = 1000;

export interface PixelEditResult {
  png: Uint8Array;
  /** the scene read from the input, and the scene after the edits */
  before: Scene;
  after: Scene;
  /** pixels whose value changed */
  changed: number;
}

/** Coverage (0..1) of `o` drawn at w × h, as the renderer anti-aliases it. */
async function coverage(o: SceneObject, w: number, h: number): Promise<Float32Array> {
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${UNITS} ${UNITS}">` +
    `<rect x="0" y="0" width="${UNITS}" height="${UNITS}" fill="#000000"/>` +
    shapeSvg(o.shape, o.cx * UNITS, o.cy * UNITS, o.r * UNITS, '#ffffff') +
    `</svg>`;
  const { data } = await sharp(Buffer.from(svg)).removeAlpha().extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  const out = new Float32Array(w * h);
  for (let i = 0; i < out.length; i++) out[i] = (data[i] as number) / 255;
  return out;
}

/**
 * Apply `edits` in order to the objects of `png`. Null when an edit cannot be carried out on what the image shows
 * (it names an object that is not there, or there is no room). Deterministic in (png, edits, rng state).
 */
export async function editPixels(png: Uint8Array, edits: readonly Edit[], rng: Rng): Promise<PixelEditResult | null> {
  const seg = await segmentObjects(png);
  const { width: w, height: h } = seg;
  const before: Scene = seg.objects.map(({ detection: d }) => ({ shape: d.shape, color: d.color, cx: d.cx, cy: d.cy, r: d.r }));
  let after: Scene | null = before;
  for (const e of edits) {
    after = after ? applyEdit(after, e, rng) : null;
    if (!after) return null;
  }
  const out = new Uint8Array(seg.data);
  // objects of the input that are not in the result, unchanged: erase them and their one-pixel fringe (blends the
  // segmentation left unassigned), never a pixel another object owns
  const gone = before.map((o, i) => (after!.some((a) => same(a, o)) ? -1 : i)).filter((i) => i >= 0);
  for (const i of gone) {
    for (const p of seg.objects[i]!.pixels) {
      const x = p % w;
      const y = (p - x) / w;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const nx = x + dx;
          const ny = y + dy;
          if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
          const q = ny * w + nx;
          const owner = seg.owner[q] as number;
          if (owner !== i && owner !== -1) continue;
          out[3 * q] = BACKGROUND[0];
          out[3 * q + 1] = BACKGROUND[1];
          out[3 * q + 2] = BACKGROUND[2];
        }
      }
    }
  }
  // objects of the result that were not in the input: draw them, in scene order (later ones on top)
  for (const o of after.filter((a) => !before.some((b) => same(a, b)))) {
    const a = await coverage(o, w, h);
    const c = PALETTE[o.color];
    for (let q = 0; q < w * h; q++) {
      const t = a[q] as number;
      if (t <= 0) continue;
      for (let k = 0; k < 3; k++) out[3 * q + k] = Math.round((out[3 * q + k] as number) * (1 - t) + (c[k] as number) * t);
    }
  }
  let changed = 0;
  for (let q = 0; q < w * h; q++) {
    if (out[3 * q] !== seg.data[3 * q] || out[3 * q + 1] !== seg.data[3 * q + 1] || out[3 * q + 2] !== seg.data[3 * q + 2]) changed++;
  }
  const buf = await sharp(Buffer.from(out), { raw: { width: w, height: h, channels: 3 } })
    .png({ compressionLevel: 6, adaptiveFiltering: false })
    .toBuffer();
  return { png: new Uint8Array(buf), before, after, changed };
}
