/**
 * Explicit layouts: the wording the embedded prompt refiner writes and the fine-tuned generator was trained on.
 *
 * A layout prompt names every object with its own colour and a place on a 3×3 grid of the image:
 *   "a red circle at the top left, a yellow square at the bottom right and two stars on the left"
 * so a relation becomes two places, a count becomes that many placed objects and every colour stands next to its
 * own object. The parser (prompts.ts) reads the place phrases as placement hints and skips them, so a layout
 * prompt parses to the objects it names.
 */
import type { Detection, PromptSpec, Relation } from './rules.js';
import type { Scene } from './scene.js';
import { PLURALS, type Color, type Shape } from './shapes.js';
import type { Rng } from './random.js';

export const REGIONS = ['top left', 'top', 'top right', 'left', 'center', 'right', 'bottom left', 'bottom', 'bottom right'] as const;
export type Region = (typeof REGIONS)[number];

/** The phrase of each region, as written and as parsed. */
export const REGION_PHRASES: ReadonlyArray<readonly [string, Region]> = REGIONS.map((r) => [phraseOf(r), r] as const).sort(
  (a, b) => b[0].length - a[0].length, // longest first: "at the bottom right" before "at the bottom"
);

function phraseOf(r: Region): string {
  if (r === 'center') return 'in the center';
  if (r === 'left' || r === 'right') return `on the ${r}`;
  return `at the ${r}`;
}
export const regionPhrase = (r: Region): string => phraseOf(r);

/** Column 0..2 and row 0..2 of a region. */
export function regionCell(r: Region): [number, number] {
  const i = REGIONS.indexOf(r);
  return [i % 3, Math.floor(i / 3)];
}
const regionAt = (col: number, row: number): Region => REGIONS[row * 3 + col] as Region;

/** The region of a normalised centre (thirds of the image side). */
export function regionOf(cx: number, cy: number): Region {
  const third = (v: number): number => (v < 1 / 3 ? 0 : v > 2 / 3 ? 2 : 1);
  return regionAt(third(cx), third(cy));
}

/** One placed group of a layout: `count` objects of one class (and colour), in one region or unplaced. */
export interface LayoutItem {
  shape: Shape;
  color?: Color;
  count: number;
  region?: Region;
}

const NUMBER = ['zero', 'one', 'two', 'three', 'four', 'five', 'six'];
const article = (w: string): string => (/^[aeiou]/.test(w) ? 'an' : 'a');

function itemText(it: LayoutItem): string {
  const noun = it.count === 1 ? it.shape : PLURALS[it.shape];
  const np = it.color ? `${it.color} ${noun}` : noun;
  const head = it.count === 1 ? `${article(np)} ${np}` : `${NUMBER[it.count] ?? String(it.count)} ${np}`;
  return it.region ? `${head} ${regionPhrase(it.region)}` : head;
}

/** Merge items that name the same object in the same place into one counted item, keeping first-seen order. */
export function mergeItems(items: readonly LayoutItem[]): LayoutItem[] {
  const out: LayoutItem[] = [];
  for (const it of items) {
    const same = out.find((o) => o.shape === it.shape && o.color === it.color && o.region === it.region);
    if (same) same.count += it.count;
    else out.push({ ...it });
  }
  return out;
}

/** The layout as prompt text: items joined by commas and a final "and". */
export function layoutText(items: readonly LayoutItem[]): string {
  const parts = mergeItems(items).map(itemText);
  if (parts.length <= 1) return parts[0] ?? '';
  return `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Captions of rendered scenes (the generator's training data)

/**
 * The layout caption of a scene made for `spec`: each object the spec asks for, with its colour when the spec names
 * one and the region it stands in; objects the spec does not mention (distractors) are left out, as in the
 * ordinary captions. Items are listed in a random order so that the model does not learn one order.
 */
export function sceneLayoutCaption(spec: PromptSpec, scene: Scene, rng: Rng): string {
  const used = new Set<number>();
  const items: LayoutItem[] = [];
  for (const clause of spec.include) {
    let left = clause.count;
    scene.forEach((o, i) => {
      if (left <= 0 || used.has(i) || o.shape !== clause.class || (clause.color && o.color !== clause.color)) return;
      used.add(i);
      left--;
      items.push({ shape: o.shape, ...(clause.color ? { color: clause.color as Color } : {}), count: 1, region: regionOf(o.cx, o.cy) });
    });
  }
  return layoutText(rng.shuffle(items));
}

// ---------------------------------------------------------------------------------------------------------------
// Planning a layout for a prompt (the embedded refiner)

/** Regions in the order a free object is placed: corners and sides before the centre, spread out. */
const FREE_ORDER: readonly Region[] = ['left', 'right', 'top', 'bottom', 'top left', 'bottom right', 'top right', 'bottom left', 'center'];

interface Slot {
  clause: number;
  shape: Shape;
  color?: Color;
  count: number;
  region?: Region;
}

function constrain(rel: Relation, side: 'subject' | 'anchor', hint: Region | undefined): Region {
  const [hc, hr] = hint ? regionCell(hint) : [1, 1];
  // subject `rel` anchor: left of ⇒ subject in column 0, anchor in column 2; above ⇒ subject in row 0, anchor in row 2
  const first = side === 'subject';
  switch (rel) {
    case 'left of':
      return regionAt(first ? 0 : 2, hr);
    case 'right of':
      return regionAt(first ? 2 : 0, hr);
    case 'above':
      return regionAt(hc, first ? 0 : 2);
    case 'below':
      return regionAt(hc, first ? 2 : 0);
  }
}

/**
 * A layout that satisfies `spec`, keeping what the image already has right where it is: objects the spec asks for
 * that were detected keep their region, a relation puts its two sides on opposite sides (rows kept), and missing
 * objects go to free regions, spread out. Deterministic.
 *
 * A counted clause beside other clauses ("two stars and a cross") stays one group in one place ("two stars on the
 * left and a cross on the right"): on training prompts (`bench/layout-follow.ts`) the generator draws that right
 * 0.397 of the time against 0.176 when each star has its own place. A count alone ("three red stars") is spread, one
 * place per object, as the generator's layout captions are written.
 */
export function planLayout(spec: PromptSpec, detections: readonly Detection[]): LayoutItem[] {
  const slots: Slot[] = [];
  const used = new Set<Detection>();
  const ranked = detections.slice().sort((a, b) => b.score - a.score);
  const grouped = spec.include.length > 1;
  spec.include.forEach((clause, ci) => {
    const shape = clause.class as Shape;
    const color = clause.color as Color | undefined;
    const found = ranked.filter((x) => !used.has(x) && x.shape === shape && (!color || x.color === color)).slice(0, clause.count);
    found.forEach((d) => used.add(d));
    const slot = (count: number, d: Detection | undefined): Slot => ({ clause: ci, shape, ...(color ? { color } : {}), count, ...(d ? { region: regionOf(d.cx, d.cy) } : {}) });
    if (grouped) slots.push(slot(clause.count, found[0]));
    else for (let k = 0; k < clause.count; k++) slots.push(slot(1, found[k]));
  });
  // relations: the subject clause's objects on one side, the anchor's on the other
  spec.include.forEach((clause, ci) => {
    if (!clause.position) return;
    const [rel, target] = clause.position;
    const subj = slots.filter((s) => s.clause === ci);
    const anchor = slots.filter((s) => s.clause === target);
    const hint = anchor[0]?.region ?? subj[0]?.region;
    anchor.forEach((s) => (s.region = constrain(rel, 'anchor', s.region ?? hint)));
    subj.forEach((s) => (s.region = constrain(rel, 'subject', s.region ?? hint)));
  });
  // objects sharing a region with another object move to a free one (same line first), then the unplaced are placed
  const taken = new Map<Region, number>();
  for (const s of slots) {
    if (!s.region) continue;
    if (taken.has(s.region)) {
      const [c, r] = regionCell(s.region);
      const line = REGIONS.filter((x) => !taken.has(x) && (regionCell(x)[0] === c || regionCell(x)[1] === r) && keepsRelations(x, s, spec, slots));
      s.region = line[0];
    }
    if (s.region) taken.set(s.region, s.clause);
  }
  for (const s of slots) {
    if (s.region) continue;
    s.region = FREE_ORDER.find((x) => !taken.has(x));
    if (s.region) taken.set(s.region, s.clause);
  }
  return mergeItems(slots.map((s) => ({ shape: s.shape, ...(s.color ? { color: s.color } : {}), count: s.count, ...(s.region ? { region: s.region } : {}) })));
}

/** Would putting slot `s` in region `x` keep every relation it takes part in (by grid column/row)? */
function keepsRelations(x: Region, s: Slot, spec: PromptSpec, slots: readonly Slot[]): boolean {
  const [c, r] = regionCell(x);
  for (const [ci, clause] of spec.include.entries()) {
    if (!clause.position) continue;
    const [rel, target] = clause.position;
    const side = ci === s.clause ? 'subject' : target === s.clause ? 'anchor' : null;
    if (!side) continue;
    const other = slots.find((o) => o.clause === (side === 'subject' ? target : ci) && o.region);
    if (!other?.region) continue;
    const [oc, or] = regionCell(other.region);
    const sign = side === 'subject' ? 1 : -1;
    if (rel === 'left of' && !(sign * (oc - c) > 0)) return false;
    if (rel === 'right of' && !(sign * (c - oc) > 0)) return false;
    if (rel === 'above' && !(sign * (or - r) > 0)) return false;
    if (rel === 'below' && !(sign * (r - or) > 0)) return false;
  }
  return true;
}
