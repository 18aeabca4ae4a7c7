/**
 * Where a reflection asks the corrector to change the image: the reflection's edits grounded on the objects the
 * embedded perception reads in the previous image, drawn as boxes (the corrector's `region` input, models/corrector.md).
 *
 * The edits are carried out on the scene the detections make, with the same placement rules the procedural corrector
 * follows (shapeworld/edits.ts): an object the result no longer has, or has changed, marks its detected box; an object
 * the result gains (added, moved, recoloured) marks the box it would be drawn in. The corrector still draws the change
 * itself; the region only says where.
 *
 * The reflection may come from another reader than the perception (a VLM reflector, the evaluator in a benchmark), and
 * the two may read one blurred shape two ways ("the purple diamond" that the perception reads as a purple circle). An
 * object an edit names that the scene lacks is therefore taken to be the only object of its colour (else of its class)
 * there; that object is redrawn in place when the edit would leave it as the perception reads it. An edit that still
 * names nothing the perception sees is left out, so a reflection it cannot ground at all gives an empty region — the
 * corrector was trained with empty regions too.
 */
import { applyEdit, parseEdit, type Edit, type ObjectRef } from '../../shapeworld/edits.js';
import { mixSeed, Rng } from '../../shapeworld/random.js';
import type { Detection, Relation } from '../../shapeworld/rules.js';
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
  const redraw = new Set<SceneObject>(); // objects an edit named under another reading
  for (const line of items) {
    const parsed = parseEdit(line);
    if (!parsed) continue;
    const { edit, stoodIn } = ground(scene, parsed);
    const next = applyEdit(scene, edit, rng);
    if (!next) continue;
    scene = keepIdentity(scene, next);
    if (stoodIn) redraw.add(stoodIn);
  }
  const mask = new Float32Array(channels * size * size);
  const draw = mask.subarray((channels - 1) * size * size);
  for (const o of before) if (!scene.some((a) => a === o) || redraw.has(o)) fill(mask, size, boxOf.get(o)!);
  for (const o of scene) if (!boxOf.has(o) || redraw.has(o)) fill(draw, size, objectBox(o));
  return mask;
}

/**
 * `edit` with each object it names that `scene` lacks replaced by the one scene object that can stand for it: the
 * only one of its colour (a colour reading is surer than a class reading of a blurred shape), else the only one of
 * its class. A reference without colour, or with several such objects, stays (and the edit fails). `stoodIn`: the
 * object taken for the edit's subject (not an anchor).
 */
function ground(scene: Scene, edit: Edit): { edit: Edit; stoodIn?: SceneObject } {
  const stand = (ref: ObjectRef): SceneObject | undefined => {
    if (!ref.color || scene.some((o) => o.shape === ref.shape && o.color === ref.color)) return undefined;
    const only = (same: (o: SceneObject) => boolean): SceneObject | undefined => {
      const found = scene.filter(same);
      return found.length === 1 ? found[0] : undefined;
    };
    return only((o) => o.color === ref.color) ?? only((o) => o.shape === ref.shape);
  };
  const refOf = (o: SceneObject): ObjectRef => ({ shape: o.shape, color: o.color });
  const anchor = (rel: { rel: Relation; ref: ObjectRef }): { rel: Relation; ref: ObjectRef } => {
    const o = stand(rel.ref);
    return o ? { ...rel, ref: refOf(o) } : rel;
  };
  if (edit.op === 'add') return { edit: edit.relation ? { ...edit, relation: anchor(edit.relation) } : edit };
  const stoodIn = stand(edit.object);
  const object = stoodIn ? refOf(stoodIn) : edit.object;
  return { edit: edit.op === 'move' ? { ...edit, object, relation: anchor(edit.relation) } : { ...edit, object }, ...(stoodIn ? { stoodIn } : {}) };
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
