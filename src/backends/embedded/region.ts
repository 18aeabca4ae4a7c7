/**
 * Where a reflection asks the corrector to change the image: the reflection's edits grounded on the objects the
 * embedded perception reads in the previous image, drawn as boxes (the corrector's `region` input, models/corrector.md).
 *
 * The edits are carried out on the scene the detections make, with the same placement rules the procedural corrector
 * follows (shapeworld/edits.ts): an object the result no longer has, or has changed, marks its detected box; an object
 * the result gains (added, moved, recoloured) marks the box it would be drawn in. The corrector still draws the change
 * itself; the region only says where. An edit that names no object the perception sees is left out, so a reflection
 * the perception cannot ground at all gives an empty region — the corrector was trained with empty regions too.
 */
import { applyEdit, parseEdit } from '../../shapeworld/edits.js';
import { mixSeed, Rng } from '../../shapeworld/random.js';
import type { Detection } from '../../shapeworld/rules.js';
import { objectBox, sameObject, type Scene, type SceneObject } from '../../shapeworld/scene.js';

type Box = readonly [number, number, number, number];

/** A box is drawn a pixel wider on each side than the pixels it overlaps, as the training regions were on average. */
const GROW = 1;

/**
 * The region mask (size × size, 1 inside, 0 outside) of `items` (one edit instruction each) on an image whose objects
 * are `detections`. Deterministic in its inputs; `seed` draws where an added or moved object goes. With `channels` 2
 * it is two planes: the boxes of what goes away or changes (erase), then of what is drawn (draw); with 1, both in one.
 */
export function editRegion(detections: readonly Detection[], items: readonly string[], size: number, seed: number, channels: 1 | 2 = 1): Float32Array {
  const before: Scene = detections.map((d) => ({ shape: d.shape, color: d.color, cx: d.cx, cy: d.cy, r: d.r }));
  const boxOf = new Map<SceneObject, Box>(before.map((o, i) => [o, detections[i]!.box]));
  const rng = new Rng(mixSeed(seed, 'edit-region'));
  let scene = before;
  for (const line of items) {
    const edit = parseEdit(line);
    const next = edit ? applyEdit(scene, edit, rng) : null;
    if (next) scene = keepIdentity(scene, next);
  }
  const mask = new Float32Array(channels * size * size);
  const draw = mask.subarray((channels - 1) * size * size);
  for (const o of before) if (!scene.some((a) => a === o)) fill(mask, size, boxOf.get(o)!);
  for (const o of scene) if (!boxOf.has(o)) fill(draw, size, objectBox(o));
  return mask;
}

/** `next` (applyEdit copies every object) with the objects it left unchanged given back as `prev` had them. */
function keepIdentity(prev: Scene, next: Scene): Scene {
  const free = new Set(prev);
  return next.map((o) => {
    const same = [...free].find((p) => sameObject(p, o));
    if (!same) return o;
    free.delete(same);
    return same;
  });
}

function fill(mask: Float32Array, size: number, [x1, y1, x2, y2]: Box): void {
  const lo = (v: number): number => Math.max(0, Math.floor(v * size) - GROW);
  const hi = (v: number): number => Math.min(size - 1, Math.ceil(v * size) - 1 + GROW);
  for (let y = lo(y1); y <= hi(y2); y++) for (let x = lo(x1); x <= hi(x2); x++) mask[y * size + x] = 1;
}
