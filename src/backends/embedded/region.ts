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
 *
 * A corrector trained with a colour hint (models/corrector.json `colorHint`) also reads, over each box where it draws,
 * the colour the object there is to have: the colour the edit names, or the one the perception read for an object it
 * moves or redraws. An Add that names no colour leaves its box without one, as in training when the hint was dropped.
 * One trained with a class hint (`classHint`) reads each draw box's class too, one plane per class: the class of the
 * object drawn there, which the edit always names.
 */
import { answersTo, applyEdit, parseEdit, type Edit, type ObjectRef } from '../../shapeworld/edits.js';
import { mixSeed, Rng } from '../../shapeworld/random.js';
import type { Detection, Relation } from '../../shapeworld/rules.js';
import { objectBox, sameObject, type Scene, type SceneObject } from '../../shapeworld/scene.js';
import { SHAPES, type Color, type RGB, type Shape } from '../../shapeworld/shapes.js';

type Box = readonly [number, number, number, number];

/** The planes a corrector reads: 1 (one mask) or 2 (erase, draw) mask planes, then 3 colour-hint planes if `hint`. */
export interface RegionLayout {
  channels: 1 | 2;
  /**
   * (two mask planes) the colours as the model was trained on them (0–255): each draw box whose object's colour the
   * edits name or the perception read gets that colour's RGB / 127.5 − 1 in three more planes; 0 elsewhere, and where
   * an Add names no colour (the model picks one)
   */
  hint?: Readonly<Record<Color, RGB>>;
  /** (with a `hint`) the classes in the model's plane order: each draw box gets 1 on its object's class plane */
  classes?: readonly Shape[];
}

/** How many planes of size × size a region of `layout` has. */
export const regionPlanes = (layout: RegionLayout): number => layout.channels + (layout.hint ? 3 : 0) + (layout.classes?.length ?? 0);

/** A box is drawn a pixel wider on each side than the pixels it overlaps, as the training regions were on average. */
const GROW = 1;

/**
 * The region mask (size × size, 1 inside, 0 outside) of `items` (one edit instruction each) on an image whose objects
 * are `detections`. Deterministic in its inputs; `seed` draws where an added or moved object goes. With `channels` 2
 * it is two planes: the boxes of what goes away or changes (erase), then of what is drawn (draw); with 1, both in one.
 * With a `hint`, three planes more: the colour of each drawn box; with `classes`, one more per class (RegionLayout).
 */
export function editRegion(detections: readonly Detection[], items: readonly string[], size: number, seed: number, layout: RegionLayout = { channels: 1 }): Float32Array {
  const { channels, hint, classes } = layout;
  if (hint && channels !== 2) throw new Error('editRegion: a colour hint goes with the two-plane (erase, draw) region');
  if (classes && !hint) throw new Error('editRegion: a class hint goes with the colour hint');
  if (classes && !SHAPES.every((c) => classes.includes(c))) throw new Error('editRegion: a class hint has a plane for each class');
  const before: Scene = detections.map((d) => ({ shape: d.shape, color: d.color, cx: d.cx, cy: d.cy, r: d.r }));
  const boxOf = new Map<SceneObject, Box>(before.map((o, i) => [o, detections[i]!.box]));
  const rng = new Rng(mixSeed(seed, 'edit-region'));
  let scene = before;
  const redraw = new Set<SceneObject>(); // objects an edit named under another reading
  const unnamed = new Set<SceneObject>(); // objects an Add put in with a colour of its own choosing
  for (const line of items) {
    const parsed = parseEdit(line);
    if (!parsed) continue;
    const { edit, stoodIn } = ground(scene, parsed);
    const next = applyEdit(scene, edit, rng);
    if (!next) continue;
    const prev = new Set(scene);
    scene = keepIdentity(scene, next);
    if (stoodIn) redraw.add(stoodIn);
    if (edit.op === 'add' && !edit.object.color) for (const o of scene) if (!prev.has(o) && o.shape === edit.object.shape) unnamed.add(o);
  }
  const plane = size * size;
  const mask = new Float32Array(regionPlanes(layout) * plane);
  const draw = mask.subarray((channels - 1) * plane, channels * plane);
  for (const o of before) if (!scene.some((a) => a === o) || redraw.has(o)) fill(mask, size, boxOf.get(o)!);
  for (const o of scene) {
    if (boxOf.has(o) && !redraw.has(o)) continue;
    fill(draw, size, objectBox(o));
    if (hint && !unnamed.has(o)) hint[o.color].forEach((c, k) => fill(mask.subarray((channels + k) * plane, (channels + k + 1) * plane), size, objectBox(o), c / 127.5 - 1));
    if (classes) {
      const k = channels + 3 + classes.indexOf(o.shape);
      fill(mask.subarray(k * plane, (k + 1) * plane), size, objectBox(o));
    }
  }
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
    if (!ref.color || scene.some((o) => answersTo(o, ref))) return undefined;
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

function fill(mask: Float32Array, size: number, [x1, y1, x2, y2]: Box, value = 1): void {
  const lo = (v: number): number => Math.max(0, Math.floor(v * size) - GROW);
  const hi = (v: number): number => Math.min(size - 1, Math.ceil(v * size) - 1 + GROW);
  for (let y = lo(y1); y <= hi(y2); y++) for (let x = lo(x1); x <= hi(x2); x++) mask[y * size + x] = value;
}
