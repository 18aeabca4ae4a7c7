/**
 * ShapeWorld scenes: a list of coloured shapes in normalised coordinates, sampled deterministically from a seed,
 * either at random or so that they satisfy (or, with one chosen defect, violate) a GenEval prompt spec.
 */
import { UserError } from '../core/errors.js';
import { Rng } from './random.js';
import {
  judge,
  relationStrength,
  validateSpec,
  type Detection,
  type PromptSpec,
  type Relation,
} from './rules.js';
import { COLORS, POLYGONS, SHAPES, unitArea, unitBox, type Color, type Shape } from './shapes.js';

/** One object: centre (cx, cy) and scale r, all normalised to the image side ([0, 1], y down). */
export interface SceneObject {
  shape: Shape;
  color: Color;
  cx: number;
  cy: number;
  r: number;
}
/** A scene: objects drawn in order (later ones on top) on the plain background. */
export type Scene = SceneObject[];

/** The same object: class, colour, centre and size all equal. */
export const sameObject = (a: SceneObject, b: SceneObject): boolean =>
  a.shape === b.shape && a.color === b.color && a.cx === b.cx && a.cy === b.cy && a.r === b.r;

export const DEFECTS = ['missing', 'extra', 'wrong_color', 'wrong_relation', 'swapped_binding', 'wrong_class'] as const;
export type Defect = (typeof DEFECTS)[number];

/** Distance from a shape's centre to its farthest point, in the unit frame. */
const CIRCUMRADIUS: Record<Shape, number> = Object.fromEntries(
  SHAPES.map((s) => [s, s === 'circle' ? 0.9 : Math.max(...POLYGONS[s].map(([x, y]) => Math.hypot(x, y)))]),
) as Record<Shape, number>;

/** Gap kept between same-coloured objects (normalised), so that they never touch at any resolution ≥ 32 px. */
const SAME_COLOR_GAP = 0.06;
/** Gap between differently coloured objects when the scene does not overlap them. */
const GAP = 0.03;
/** Deepest overlap allowed between differently coloured objects, as a fraction of the sum of circumradii. */
const MAX_OVERLAP = 0.12;
const EDGE = 0.03;

export function objectBox(o: SceneObject): [number, number, number, number] {
  const [x1, y1, x2, y2] = unitBox(o.shape);
  return [o.cx + x1 * o.r, o.cy + y1 * o.r, o.cx + x2 * o.r, o.cy + y2 * o.r];
}

/** The ground truth as detections: what a perfect detector would report. */
export function sceneDetections(scene: Scene): Detection[] {
  return scene.map((o) => ({
    shape: o.shape,
    color: o.color,
    cx: o.cx,
    cy: o.cy,
    r: o.r,
    box: objectBox(o),
    score: unitArea(o.shape) * o.r * o.r,
  }));
}

/** GenEval's verdict on a scene's ground truth. */
export function judgeScene(scene: Scene, spec: PromptSpec): ReturnType<typeof judge> {
  return judge(sceneDetections(scene), spec);
}

function sizeRange(n: number): [number, number] {
  if (n <= 2) return [0.13, 0.19];
  if (n === 3) return [0.115, 0.16];
  if (n <= 5) return [0.1, 0.135];
  return [0.095, 0.12];
}

function fits(o: SceneObject): boolean {
  const [x1, y1, x2, y2] = objectBox(o);
  return x1 >= EDGE && y1 >= EDGE && x2 <= 1 - EDGE && y2 <= 1 - EDGE;
}

function compatible(o: SceneObject, others: readonly SceneObject[], overlap: boolean): boolean {
  for (const p of others) {
    const d = Math.hypot(o.cx - p.cx, o.cy - p.cy);
    const reach = CIRCUMRADIUS[o.shape] * o.r + CIRCUMRADIUS[p.shape] * p.r;
    if (o.color === p.color) {
      if (d < reach + SAME_COLOR_GAP) return false;
    } else if (overlap) {
      if (d < reach * (1 - MAX_OVERLAP)) return false;
    } else if (d < reach + GAP) {
      return false;
    }
  }
  return true;
}

/** Whether an object may stand where it is among `others`: inside the frame and apart from same-coloured objects. */
export function canStand(o: SceneObject, others: readonly SceneObject[], overlap = false): boolean {
  return fits(o) && compatible(o, others, overlap);
}

/** What to place: shape/colour, and optionally a relation to an earlier placed object. */
interface Slot {
  shape: Shape;
  color: Color;
  /** place relative to slot `of` so that this object is `rel` it (or, with `violate`, clearly is not) */
  relation?: { rel: Relation; of: number; violate: boolean };
}

const AXIS: Record<Relation, [number, number]> = {
  'left of': [-1, 0],
  'right of': [1, 0],
  above: [0, -1],
  below: [0, 1],
};

/** How strongly box a is `rel` box b, on GenEval's normalised scale (> 0.5 means the relation holds). */
export function relationMargin(a: SceneObject, b: SceneObject, rel: Relation): number {
  const [dx, dy] = relationStrength(objectBox(a), objectBox(b));
  const [ax, ay] = AXIS[rel];
  return dx * ax + dy * ay;
}

export interface PlaceOptions {
  /** object scale; default drawn from `sizes`, else from the size range for a scene of `scene.length + 1` objects */
  r?: number;
  sizes?: [number, number];
  /** place it so that it is `rel` the anchor (or, with `violate`, clearly is not) */
  relation?: { rel: Relation; anchor: SceneObject; violate?: boolean };
  /** allow a slight overlap with differently coloured objects */
  overlap?: boolean;
  attempts?: number;
}

/**
 * Find a place for a new object among `scene`'s: inside the frame, apart from same-coloured objects, and with a
 * relation to an anchor held (or broken) by a clear margin around GenEval's threshold. Null when none is found.
 */
export function placeObject(scene: readonly SceneObject[], shape: Shape, color: Color, rng: Rng, opts: PlaceOptions = {}): SceneObject | null {
  const [lo, hi] = opts.sizes ?? sizeRange(scene.length + 1);
  const relation = opts.relation;
  for (let attempt = 0; attempt < (opts.attempts ?? 300); attempt++) {
    const r = opts.r ?? rng.range(lo, hi);
    let cx: number;
    let cy: number;
    if (relation) {
      const [ax, ay] = AXIS[relation.rel];
      const angle = relation.violate
        ? Math.atan2(ay, ax) + rng.pick([Math.PI, Math.PI / 2, -Math.PI / 2]) + rng.range(-0.5, 0.5)
        : Math.atan2(ay, ax) + rng.range(-0.55, 0.55);
      const dist = rng.range(0.25, 0.7);
      cx = relation.anchor.cx + dist * Math.cos(angle);
      cy = relation.anchor.cy + dist * Math.sin(angle);
    } else {
      cx = rng.range(0.1, 0.9);
      cy = rng.range(0.1, 0.9);
    }
    const o: SceneObject = { shape, color, cx, cy, r };
    if (!fits(o) || !compatible(o, scene, opts.overlap ?? false)) continue;
    if (relation) {
      const m = relationMargin(o, relation.anchor, relation.rel);
      // keep well clear of GenEval's 0.5 threshold, so that pixels and truth cannot disagree
      if (relation.violate ? m > 0.3 : m < 0.7) continue;
    }
    return o;
  }
  return null;
}

function placeSlots(slots: readonly Slot[], rng: Rng, overlap: boolean): Scene | null {
  const sizes = sizeRange(slots.length);
  const scene: SceneObject[] = [];
  for (const slot of slots) {
    const anchor = slot.relation ? scene[slot.relation.of] : undefined;
    const placed = placeObject(scene, slot.shape, slot.color, rng, {
      sizes,
      overlap,
      ...(slot.relation && anchor ? { relation: { rel: slot.relation.rel, anchor, violate: slot.relation.violate } } : {}),
      attempts: 300,
    });
    if (!placed) return null;
    scene.push(placed);
  }
  return scene;
}

export interface SampleOptions {
  /** probability that differently coloured objects may overlap slightly (default 0.15) */
  overlapRate?: number;
}

/** A random scene: 1–3 classes with 1–4 instances each (at most 6 objects). */
export function sampleScene(seed: number, options: SampleOptions = {}): Scene {
  const rng = new Rng(seed);
  for (;;) {
    const classes = rng.shuffle(SHAPES).slice(0, rng.int(1, 3));
    const slots: Slot[] = [];
    for (const shape of classes) {
      const n = rng.int(1, 4);
      for (let i = 0; i < n && slots.length < 6; i++) slots.push({ shape, color: rng.pick(COLORS) });
    }
    const scene = placeSlots(rng.shuffle(slots), rng, rng.chance(options.overlapRate ?? 0.15));
    if (scene) return scene;
  }
}

export interface SpecSceneOptions extends SampleOptions {
  /** inject this defect (it must apply to the spec); null/undefined: a correct scene */
  defect?: Defect | null;
  /** probability of one distractor object of a class the prompt does not mention (default 0.3) */
  distractorRate?: number;
}

/** Which defects can make a scene for this spec wrong. */
export function applicableDefects(spec: PromptSpec): Defect[] {
  const out: Defect[] = ['missing'];
  if ((spec.exclude ?? []).some((e) => spec.include.some((i) => i.class === e.class && e.count === i.count + 1))) {
    out.push('extra');
  }
  if (spec.include.some((c) => c.color !== undefined)) out.push('wrong_color');
  if (spec.include.some((c) => c.position !== undefined)) out.push('wrong_relation');
  const colored = spec.include.filter((c) => c.color !== undefined);
  if (colored.length >= 2 && new Set(colored.map((c) => c.color)).size >= 2 && new Set(colored.map((c) => c.class)).size >= 2) {
    out.push('swapped_binding');
  }
  if (new Set(spec.include.map((c) => c.class)).size < SHAPES.length) out.push('wrong_class');
  return out;
}

/** The defects characteristic of a category (extra, wrong colour/relation, swapped binding) come up more often. */
const DEFECT_WEIGHT: Record<Defect, number> = { missing: 1, wrong_class: 1, extra: 2, wrong_color: 2, wrong_relation: 3, swapped_binding: 3 };

export function pickDefect(defects: readonly Defect[], rng: Rng): Defect {
  const total = defects.reduce((a, d) => a + DEFECT_WEIGHT[d], 0);
  let x = rng.float() * total;
  for (const d of defects) {
    x -= DEFECT_WEIGHT[d];
    if (x < 0) return d;
  }
  return defects[defects.length - 1] as Defect;
}

/**
 * A scene for `spec`: correct, or with exactly the one requested defect, and always unambiguous under GenEval's
 * rules (relations held or broken with a clear margin), so that a pixel evaluator can agree with the truth.
 */
export function sceneForSpec(spec: PromptSpec, seed: number, options: SpecSceneOptions = {}): Scene {
  validateSpec(spec);
  const defect = options.defect ?? null;
  if (defect && !applicableDefects(spec).includes(defect)) {
    throw new UserError(`defect '${defect}' does not apply to this prompt`);
  }
  const rng = new Rng(seed);
  for (let attempt = 0; attempt < 200; attempt++) {
    const slots = planSlots(spec, rng, defect, options.distractorRate ?? 0.3);
    if (!slots) continue;
    const scene = placeSlots(slots, rng, rng.chance(options.overlapRate ?? 0.15));
    if (!scene) continue;
    const verdict = judgeScene(scene, spec);
    if (verdict.correct !== (defect === null)) continue;
    return scene;
  }
  throw new Error(`could not build a ${defect ?? 'correct'} scene for ${JSON.stringify(spec)}`);
}

function planSlots(spec: PromptSpec, rng: Rng, defect: Defect | null, distractorRate: number): Slot[] | null {
  // Per include clause, the slots that serve it (position clauses point at the first slot of their target).
  const slots: Slot[] = [];
  const firstSlot: number[] = [];
  const mentioned = new Set<string>([...spec.include.map((c) => c.class), ...(spec.exclude ?? []).map((c) => c.class)]);
  const uniformColor = rng.chance(0.5) ? rng.pick(COLORS) : null;
  for (const clause of spec.include) {
    firstSlot.push(slots.length);
    for (let k = 0; k < clause.count; k++) {
      const slot: Slot = {
        shape: clause.class as Shape,
        color: (clause.color as Color | undefined) ?? uniformColor ?? rng.pick(COLORS),
      };
      if (clause.position) {
        const target = firstSlot[clause.position[1]];
        if (target === undefined) return null;
        slot.relation = { rel: clause.position[0], of: target, violate: false };
      }
      slots.push(slot);
    }
  }
  // colours in clauses that do not name one must not collide with a named colour of the same class
  const clauseOf: number[] = [];
  spec.include.forEach((c, i) => {
    for (let k = 0; k < c.count; k++) clauseOf.push(i);
  });

  switch (defect) {
    case null:
      break;
    case 'missing': {
      const i = rng.int(0, slots.length - 1);
      // removing a target breaks the relation's index; re-point dependants at nothing by dropping them too
      const dependants = slots.filter((s) => s.relation?.of === i).length;
      if (dependants > 0) return null;
      slots.splice(i, 1);
      for (const s of slots) if (s.relation && s.relation.of > i) s.relation.of--;
      break;
    }
    case 'extra': {
      const ex = (spec.exclude ?? []).find((e) => spec.include.some((c) => c.class === e.class && e.count === c.count + 1));
      if (!ex) return null;
      const color = slots.find((s) => s.shape === ex.class)?.color ?? rng.pick(COLORS);
      slots.push({ shape: ex.class as Shape, color: rng.chance(0.5) ? color : rng.pick(COLORS) });
      break;
    }
    case 'wrong_color': {
      const idx = slots.map((_, i) => i).filter((i) => spec.include[clauseOf[i] as number]?.color !== undefined);
      const i = rng.pick(idx);
      const slot = slots[i] as Slot;
      slot.color = rng.pick(COLORS.filter((c) => c !== slot.color));
      break;
    }
    case 'wrong_relation': {
      const idx = slots.map((_, i) => i).filter((i) => slots[i]?.relation);
      const slot = slots[rng.pick(idx)] as Slot;
      if (slot.relation) slot.relation.violate = true;
      break;
    }
    case 'swapped_binding': {
      const idx = slots.map((_, i) => i).filter((i) => spec.include[clauseOf[i] as number]?.color !== undefined);
      const pairs: Array<[number, number]> = [];
      for (const a of idx) for (const b of idx) if (a < b && slots[a]!.color !== slots[b]!.color && slots[a]!.shape !== slots[b]!.shape) pairs.push([a, b]);
      if (pairs.length === 0) return null;
      const [a, b] = rng.pick(pairs);
      const ca = slots[a]!.color;
      slots[a]!.color = slots[b]!.color;
      slots[b]!.color = ca;
      break;
    }
    case 'wrong_class': {
      const i = rng.int(0, slots.length - 1);
      const others = SHAPES.filter((s) => !mentioned.has(s));
      if (others.length === 0) return null;
      (slots[i] as Slot).shape = rng.pick(others);
      break;
    }
  }
  if (rng.chance(distractorRate) && slots.length < 6) {
    const others = SHAPES.filter((s) => !mentioned.has(s) && !slots.some((x) => x.shape === s));
    if (others.length > 0) slots.push({ shape: rng.pick(others), color: rng.pick(COLORS) });
  }
  // place targets before the objects related to them, otherwise in a random order
  const order = rng.shuffle(slots.map((_, i) => i)).sort((a, b) => depth(slots, a) - depth(slots, b));
  const remap = new Map(order.map((old, pos) => [old, pos]));
  return order.map((old) => {
    const s = { ...(slots[old] as Slot) };
    if (s.relation) s.relation = { ...s.relation, of: remap.get(s.relation.of) as number };
    return s;
  });
}

function depth(slots: readonly Slot[], i: number): number {
  let d = 0;
  let s = slots[i];
  while (s?.relation && d < 8) {
    d++;
    s = slots[s.relation.of];
  }
  return d;
}
