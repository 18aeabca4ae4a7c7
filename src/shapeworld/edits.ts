/**
 * Edit instructions: what the procedural reflector writes and the procedural corrector follows.
 *
 *   Add a red circle to the left of the blue square      Add a circle
 *   Remove one circle            Remove the green circle
 *   Replace the green star with a blue star
 *   Move the star to the left of the square
 */
import { MIRROR, RELATIONS, relativePosition, type Detection, type PromptSpec, type Relation } from './rules.js';
import { canStand, relationMargin, placeObject, type Scene, type SceneObject } from './scene.js';
import { COLORS, isColor, isShape, type Color, type Shape } from './shapes.js';
import type { Rng } from './random.js';

/** An object as an edit names it: a class, and a colour when it matters. */
export interface ObjectRef {
  shape: Shape;
  color?: Color;
}
export type Edit =
  | { op: 'add'; object: ObjectRef; relation?: { rel: Relation; ref: ObjectRef } }
  | { op: 'remove'; object: ObjectRef }
  | { op: 'replace'; object: ObjectRef; with: ObjectRef }
  | { op: 'move'; object: ObjectRef; relation: { rel: Relation; ref: ObjectRef } };

const REL_TEXT: Record<Relation, string> = {
  'left of': 'to the left of',
  'right of': 'to the right of',
  above: 'above',
  below: 'below',
};

const desc = (o: ObjectRef): string => (o.color ? `${o.color} ${o.shape}` : o.shape);
const article = (w: string): string => (/^[aeiou]/.test(w) ? 'an' : 'a');

export function editToText(e: Edit): string {
  switch (e.op) {
    case 'add': {
      const d = desc(e.object);
      const rel = e.relation ? ` ${REL_TEXT[e.relation.rel]} the ${desc(e.relation.ref)}` : '';
      return `Add ${article(d)} ${d}${rel}`;
    }
    case 'remove':
      return e.object.color ? `Remove the ${desc(e.object)}` : `Remove one ${e.object.shape}`;
    case 'replace': {
      const d = desc(e.with);
      return `Replace the ${desc(e.object)} with ${article(d)} ${d}`;
    }
    case 'move':
      return `Move the ${desc(e.object)} ${REL_TEXT[e.relation.rel]} the ${desc(e.relation.ref)}`;
  }
}

function parseRef(words: string[]): ObjectRef | null {
  const ws = words.filter((w) => !['a', 'an', 'the', 'one'].includes(w));
  if (ws.length === 1 && isShape(ws[0] as string)) return { shape: ws[0] as Shape };
  if (ws.length === 2 && isColor(ws[0] as string) && isShape(ws[1] as string)) return { color: ws[0] as Color, shape: ws[1] as Shape };
  return null;
}

function splitRelation(words: string[]): { head: string[]; rel?: Relation; tail: string[] } {
  const text = words.join(' ');
  for (const rel of RELATIONS) {
    for (const phrase of [`to the ${rel}`, rel]) {
      const i = text.indexOf(` ${phrase} `);
      if (i >= 0) {
        return { head: text.slice(0, i).split(' ').filter(Boolean), rel, tail: text.slice(i + phrase.length + 2).split(' ').filter(Boolean) };
      }
    }
  }
  return { head: words, tail: [] };
}

/** Parse one instruction; null when it is not in the edit grammar (the corrector then ignores it). */
export function parseEdit(line: string): Edit | null {
  const words = line.toLowerCase().replace(/[.,;:!]/g, ' ').replace(/^\s*(\d+[.)]|[-*•])\s*/, ' ').trim().split(/\s+/);
  const verb = words.shift();
  if (verb === 'add' || verb === 'move') {
    const { head, rel, tail } = splitRelation(words);
    const object = parseRef(head);
    if (!object) return null;
    if (rel) {
      const ref = parseRef(tail);
      if (!ref) return null;
      return verb === 'add' ? { op: 'add', object, relation: { rel, ref } } : { op: 'move', object, relation: { rel, ref } };
    }
    return verb === 'add' ? { op: 'add', object } : null;
  }
  if (verb === 'remove') {
    const object = parseRef(words);
    return object ? { op: 'remove', object } : null;
  }
  if (verb === 'replace') {
    const i = words.indexOf('with');
    if (i < 0) return null;
    const object = parseRef(words.slice(0, i));
    const repl = parseRef(words.slice(i + 1));
    return object && repl ? { op: 'replace', object, with: repl } : null;
  }
  return null;
}

// -----------------------------------------------------------------------------------------------------------------
// Planning: from what was detected and what the prompt asks, the edits that would make the image correct.

const refOf = (d: { shape: Shape; color: Color }): ObjectRef => ({ shape: d.shape, color: d.color });

/** Edits that turn the detected objects into an image satisfying `spec` (empty when it already does). */
export function planEdits(detections: readonly Detection[], spec: PromptSpec): Edit[] {
  const edits: Edit[] = [];
  const used = new Set<Detection>();
  const mentioned = new Set<string>([...spec.include.map((c) => c.class), ...(spec.exclude ?? []).map((c) => c.class)]);
  // per include clause: its objects once edited, and where its first object is — the detection it is (taken, or
  // replaced in place), or the index of the edit adding it
  const groups: Array<{ refs: ObjectRef[]; det?: Detection; add?: number }> = [];
  // Which of several alike objects an edit names must not depend on the detector, so that two readings of one image
  // plan the same edits: never by a detector's own score (the evaluator's is an area, a learned perception's a
  // confidence). Reading order is such a key — two detectors place an object within a few hundredths of the side.
  // Sizes are not: two circles of nearly one size swap places between readings, and the plan then removes a
  // different one. Only the objects of a relation are taken largest first, as a relation is judged on them.
  const area = (d: Detection): number => (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]);
  const reading = detections.slice().sort((a, b) => a.cy - b.cy || a.cx - b.cx);
  const bySize = reading.slice().sort((a, b) => area(b) - area(a));
  const related = new Set(spec.include.flatMap((c, i) => (c.position ? [i, c.position[1]] : [])));
  // objects the prompt has no use for: classes it does not mention
  const spare = (): Detection | undefined => reading.find((d) => !used.has(d) && !mentioned.has(d.shape));
  for (const [index, clause] of spec.include.entries()) {
    const shape = clause.class as Shape;
    const color = clause.color as Color | undefined;
    const group: ObjectRef[] = [];
    const sorted = related.has(index) ? bySize : reading;
    const have = sorted.filter((d) => !used.has(d) && d.shape === shape && (!color || d.color === color));
    const taken = have.slice(0, clause.count);
    for (const d of taken) {
      used.add(d);
      group.push(refOf(d));
    }
    const first: { det?: Detection; add?: number } = taken[0] ? { det: taken[0] } : {};
    let missing = clause.count - taken.length;
    const target = clause.position ? groups[clause.position[1]]?.refs[0] : undefined;
    while (missing > 0) {
      const wrongColor = color ? sorted.find((d) => !used.has(d) && d.shape === shape && d.color !== color) : undefined;
      const other = spare();
      const want: ObjectRef = { shape, ...(color ? { color } : {}) };
      if (wrongColor) {
        used.add(wrongColor);
        if (!group.length) first.det = wrongColor;
        edits.push({ op: 'replace', object: refOf(wrongColor), with: want });
        group.push({ shape, color: color as Color });
        if (target) edits.push({ op: 'move', object: { shape, color: color as Color }, relation: { rel: clause.position![0], ref: target } });
      } else if (other && !clause.position) {
        used.add(other);
        if (!group.length) first.det = other;
        const c = color ?? other.color;
        edits.push({ op: 'replace', object: refOf(other), with: { shape, color: c } });
        group.push({ shape, color: c });
      } else {
        if (!group.length) first.add = edits.length;
        edits.push({ op: 'add', object: want, ...(target && clause.position ? { relation: { rel: clause.position[0], ref: target } } : {}) });
        group.push(want);
      }
      missing--;
    }
    // relation check for the objects that were already there
    if (clause.position && target) {
      const [rel, anchor] = clause.position;
      const { det: targetDet, add } = groups[anchor] ?? {};
      for (const d of taken) {
        if (targetDet && !relativePosition(d.box, targetDet.box).has(rel)) {
          edits.push({ op: 'move', object: refOf(d), relation: { rel, ref: target } });
        }
      }
      // the anchor is missing and this object is there: the anchor goes where the relation wants it
      const added = add !== undefined ? edits[add] : undefined;
      if (taken[0] && added?.op === 'add' && !added.relation) edits[add!] = { ...added, relation: { rel: MIRROR[rel], ref: refOf(taken[0]) } };
    }
    groups.push({ refs: group, ...first });
  }
  for (const ex of spec.exclude ?? []) {
    const shape = ex.class as Shape;
    const all = reading.filter((d) => d.shape === shape);
    const delta = edits.reduce((n, e) => {
      if (e.op === 'add' && e.object.shape === shape) return n + 1;
      if (e.op === 'replace' && e.with.shape === shape && e.object.shape !== shape) return n + 1;
      if (e.op === 'replace' && e.object.shape === shape && e.with.shape !== shape) return n - 1;
      return n;
    }, 0);
    let surplus = all.length + delta - (ex.count - 1);
    // remove what no include clause took first, last in reading order first
    const order = [...all.filter((d) => !used.has(d)).reverse(), ...all.filter((d) => used.has(d)).reverse()];
    const oneColor = new Set(all.map((d) => d.color)).size === 1;
    for (const d of order) {
      if (surplus-- <= 0) break;
      edits.push({ op: 'remove', object: oneColor ? { shape } : refOf(d) });
    }
  }
  return edits;
}

// -----------------------------------------------------------------------------------------------------------------
// Applying edits to a scene reconstructed from detections.

/** Whether an object answers to a reference: its class, and its colour when the reference names one. */
export const answersTo = (o: { shape: Shape; color: Color }, ref: ObjectRef): boolean => o.shape === ref.shape && (!ref.color || o.color === ref.color);

/**
 * The index of the object "the X" means: the largest that answers to `ref`, −1 when none does. One rule for every
 * reader of edits (the procedural corrector, the refiner's rewrite, the embedded corrector's region).
 */
export function findObject(objects: ReadonlyArray<{ shape: Shape; color: Color; r: number }>, ref: ObjectRef): number {
  let best = -1;
  objects.forEach((o, i) => {
    if (answersTo(o, ref) && (best < 0 || o.r > objects[best]!.r)) best = i;
  });
  return best;
}

/** Apply one edit; returns the new scene, or null when the edit cannot be carried out (unknown object, no room). */
export function applyEdit(scene: Scene, edit: Edit, rng: Rng): Scene | null {
  const out = scene.map((o) => ({ ...o }));
  switch (edit.op) {
    case 'add': {
      const color = edit.object.color ?? rng.pick(COLORS);
      if (edit.relation) {
        const j = findObject(out, edit.relation.ref);
        if (j < 0) return null;
        return placeRelated(out, j, { shape: edit.object.shape, color }, edit.relation.rel, rng, undefined);
      }
      const placed = placeObject(out, edit.object.shape, color, rng);
      if (!placed) return null;
      out.push(placed);
      return out;
    }
    case 'remove': {
      const i = findObject(out, edit.object);
      if (i < 0) return null;
      out.splice(i, 1);
      return out;
    }
    case 'replace': {
      const i = findObject(out, edit.object);
      if (i < 0) return null;
      const old = out[i] as SceneObject;
      out.splice(i, 1);
      const shape = edit.with.shape;
      const color = edit.with.color ?? old.color;
      const inPlace: SceneObject = { shape, color, cx: old.cx, cy: old.cy, r: old.r };
      // keep it where it was when it still fits there, else find it a new place
      const placed = canStand(inPlace, out) ? inPlace : placeObject(out, shape, color, rng, { r: old.r });
      if (!placed) return null;
      out.splice(i, 0, placed);
      return out;
    }
    case 'move': {
      const i = findObject(out, edit.object);
      const j = findObject(out, edit.relation.ref);
      if (i < 0 || j < 0 || i === j) return null;
      const obj = out[i] as SceneObject;
      const anchor = out[j] as SceneObject;
      if (relationMargin(obj, anchor, edit.relation.rel) >= 0.7) return out;
      const rest = out.filter((_, k) => k !== i);
      return placeRelated(rest, j > i ? j - 1 : j, obj, edit.relation.rel, rng, obj.r);
    }
  }
}


/**
 * Put `obj` into `scene` so that it is `rel` scene[anchor]. When the anchor leaves no room on that side (it sits at
 * the edge), the anchor is moved too, as an editor would.
 */
function placeRelated(
  scene: SceneObject[],
  anchor: number,
  obj: { shape: Shape; color: Color },
  rel: Relation,
  rng: Rng,
  r: number | undefined,
): Scene | null {
  const a = scene[anchor] as SceneObject;
  const direct = placeObject(scene, obj.shape, obj.color, rng, { ...(r ? { r } : {}), relation: { rel, anchor: a } });
  if (direct) return [...scene, direct];
  const rest = scene.filter((_, k) => k !== anchor);
  for (let attempt = 0; attempt < 40; attempt++) {
    const moved = placeObject(rest, a.shape, a.color, rng, { r: a.r, attempts: 20 });
    if (!moved) continue;
    const withAnchor = [...rest, moved];
    const placed = placeObject(withAnchor, obj.shape, obj.color, rng, { ...(r ? { r } : {}), relation: { rel, anchor: moved }, attempts: 60 });
    if (placed) return [...withAnchor, placed];
  }
  return null;
}
