/**
 * Compositional prompts just beyond GenEval's six categories: a coloured relation ("a red circle above a yellow
 * square"), a coloured count ("three blue triangles"), three objects ("a circle, a star and a square") and a count
 * with another object ("two stars and a cross"). Every combination in them is a training-split one (no test-split
 * colour, pair, relation or binding), so the set measures composition, not held-out parts.
 *
 * `compositionalCheckPrompts()` is the project's fixed check set (reported beside the test split, never trained on:
 * `compositionalTrainPrompts` skips every spec in it). The training sampler draws the same four kinds for the
 * generator's data.
 */
import { COUNTS, heldOutCombination, withArticle } from './prompts.js';
import { Rng } from './random.js';
import { canonicalSpec, COMPOSITIONAL_TAGS, RELATIONS, type CompositionalTag, type PromptRecord, type PromptSpec } from './rules.js';
import { COLORS, PLURALS, SHAPES, type Color, type Shape } from './shapes.js';

const NUMBER = ['zero', 'one', 'two', 'three', 'four'] as const;
const a = withArticle;
const REL_TEXT = {
  'left of': ['left of', 'to the left of'],
  'right of': ['right of', 'to the right of'],
  above: ['above', 'over'],
  below: ['below', 'under'],
} as const;

type Draft = { rec: PromptRecord; words: Array<(rng: Rng) => string> };

function sample(tag: CompositionalTag, rng: Rng): Draft {
  switch (tag) {
    case 'color_position': {
      const [x, y] = rng.shuffle(SHAPES) as [Shape, Shape];
      const [cx, cy] = rng.shuffle(COLORS) as [Color, Color];
      const rel = rng.pick(RELATIONS);
      const rec: PromptRecord = {
        tag,
        include: [
          { class: y, count: 1, color: cy },
          { class: x, count: 1, color: cx, position: [rel, 0] },
        ],
        prompt: '',
      };
      return {
        rec,
        words: [
          (r) => `a picture of ${a(cx)} ${x} ${r.pick(REL_TEXT[rel])} ${a(cy)} ${y}`,
          (r) => `${a(cx)} ${x} placed ${r.pick(REL_TEXT[rel])} ${a(cy)} ${y}`,
          () => `a photo of ${a(cx)} ${x} ${rel} ${a(cy)} ${y}`,
        ],
      };
    }
    case 'color_count': {
      const s = rng.pick(SHAPES);
      const c = rng.pick(COLORS);
      const n = rng.pick(COUNTS);
      const rec: PromptRecord = { tag, include: [{ class: s, count: n, color: c }], exclude: [{ class: s, count: n + 1 }], prompt: '' };
      return { rec, words: [() => `a picture of ${NUMBER[n]} ${c} ${PLURALS[s]}`, () => `exactly ${NUMBER[n]} ${c} ${PLURALS[s]}`] };
    }
    case 'three_object': {
      // uncoloured, there are only a few class triples without a held-out pair; half of them name colours
      const [x, y, z] = rng.shuffle(SHAPES) as [Shape, Shape, Shape];
      const cols = rng.chance(0.5) ? (rng.shuffle(COLORS).slice(0, 3) as Color[]) : null;
      const np = (s: Shape, i: number): string => (cols ? `${a(cols[i]!)} ${s}` : a(s));
      const rec: PromptRecord = {
        tag,
        include: [x, y, z].map((s, i) => ({ class: s, count: 1, ...(cols ? { color: cols[i]! } : {}) })),
        prompt: '',
      };
      return { rec, words: [() => `a picture of ${np(x, 0)}, ${np(y, 1)} and ${np(z, 2)}`, () => `${np(x, 0)} with ${np(y, 1)} and ${np(z, 2)}`] };
    }
    case 'count_object': {
      const [x, y] = rng.shuffle(SHAPES) as [Shape, Shape];
      const n = rng.pick([2, 3] as const);
      const rec: PromptRecord = {
        tag,
        include: [
          { class: x, count: n },
          { class: y, count: 1 },
        ],
        exclude: [{ class: x, count: n + 1 }],
        prompt: '',
      };
      return { rec, words: [() => `a picture of ${NUMBER[n]} ${PLURALS[x]} and ${a(y)}`, () => `${NUMBER[n]} ${PLURALS[x]} together with ${a(y)}`] };
    }
  }
}

/** What identifies a spec up to wording and mirrored relations (the check set is held out by it). */
export function specKey(input: PromptSpec): string {
  const spec = canonicalSpec(input);
  const inc = spec.include.map((c) => `${c.count} ${c.color ?? '*'} ${c.class}${c.position ? ` ${c.position[0]} #${c.position[1]}` : ''}`);
  if (!spec.include.some((c) => c.position)) inc.sort();
  const exc = (spec.exclude ?? []).map((e) => `${e.count} ${e.class}`).sort();
  return `${inc.join(' & ')} | ${exc.join(' & ')}`;
}

/** The check set's seed: fixed, like the test split's. */
const CHECK_SEED = 0xc0_4b05;
/** Prompts per kind in the check set. */
export const CHECK_PER_KIND = 20;

let checkCache: PromptRecord[] | null = null;

/** The fixed compositional check set: CHECK_PER_KIND prompts of each kind, distinct specs, training-split-free. */
export function compositionalCheckPrompts(): PromptRecord[] {
  if (checkCache) return checkCache.map((r) => structuredClone(r));
  const rng = new Rng(CHECK_SEED);
  const out: PromptRecord[] = [];
  const keys = new Set<string>();
  for (const tag of COMPOSITIONAL_TAGS) {
    let n = 0;
    for (let tries = 0; n < CHECK_PER_KIND; tries++) {
      if (tries > 100_000) throw new Error(`compositional check set: too few distinct ${tag} specs`);
      const { rec, words } = sample(tag, rng);
      const key = specKey(rec);
      if (heldOutCombination(rec) !== null || keys.has(key)) continue;
      keys.add(key);
      rec.prompt = words[0]!(rng);
      out.push(rec);
      n++;
    }
  }
  checkCache = out;
  return out.map((r) => structuredClone(r));
}

let checkKeys: Set<string> | null = null;
/** Is this spec one of the check set's (in any wording or mirror form)? */
export function inCheckSet(spec: PromptSpec): boolean {
  checkKeys ??= new Set(compositionalCheckPrompts().map(specKey));
  return checkKeys.has(specKey(spec));
}

/**
 * `count` training prompts of the four kinds: training-split combinations only, never a check-set spec. By default a
 * rejected draw redraws its kind too, so kinds that often hit a held-out combination (three objects: ~3 %) are rare;
 * `balanced` keeps each draw's kind, so the four come in equal shares (as in the check set).
 */
export function compositionalTrainPrompts(count: number, seed: number, options: { balanced?: boolean } = {}): PromptRecord[] {
  const rng = new Rng(seed);
  const out: PromptRecord[] = [];
  let tag: CompositionalTag | null = null;
  while (out.length < count) {
    if (!options.balanced || tag === null) tag = rng.pick(COMPOSITIONAL_TAGS);
    const { rec, words } = sample(tag, rng);
    if (heldOutCombination(rec) !== null || inCheckSet(rec)) continue;
    tag = null;
    rec.prompt = rng.pick(words)(rng);
    out.push(rec);
  }
  return out;
}
