/**
 * ShapeWorld prompt sets in GenEval's metadata schema, the fixed train/test split over combinations, a
 * paraphrasing training-prompt generator, and a parser from prompt text back to a GenEval spec.
 */
import { writeFile } from 'node:fs/promises';
import { makeOutputDir } from '../store/dirs.js';
import path from 'node:path';
import { UserError } from '../core/errors.js';
import { Rng } from './random.js';
import { COMPOSITIONAL_TAGS, MIRROR, RELATIONS, TAGS, type CompositionalTag, type IncludeClause, type PromptRecord, type PromptSpec, type Relation, type Tag } from './rules.js';
import { COLORS, PLURALS, SHAPES, isColor, isShape, type Color, type Shape } from './shapes.js';
import { REGION_PHRASES } from './layout.js';
import { unknownWord } from './suggest.js';

/** GenEval's number of prompts per category: the test benchmark lists at most this many. */
export const GENEVAL_COUNTS: Readonly<Record<Tag, number>> = {
  single_object: 80,
  two_object: 99,
  counting: 80,
  colors: 94,
  position: 100,
  color_attr: 100,
};
/** Judged images per category the eval harness should reach. */
export const MIN_IMAGES_PER_CATEGORY = 80;

const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'] as const;
/** GenEval counts 2–4. */
export const COUNTS = [2, 3, 4] as const;

/** GenEval's article rule: "an" before a vowel. */
export function withArticle(word: string): string {
  return /^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`;
}

// ---------------------------------------------------------------------------------------------------------------
// The split. It is fixed: derived from SPLIT_SEED by a seeded shuffle, never from the caller's seed.

/** The seed the train/test split is drawn from. Changing it changes the benchmark. */
export const SPLIT_SEED = 0x5ba9e;

const SPLIT_SIZES = { colors: 20, two_object: 4, position: 20, color_attr: 100 } as const;

/** Position triples are canonical up to mirroring: "A right of B" is "B left of A", "A below B" is "B above A". */
function positionKey(a: string, rel: Relation, b: string): string {
  switch (rel) {
    case 'left of':
      return `${a} left of ${b}`;
    case 'right of':
      return `${b} left of ${a}`;
    case 'above':
      return `${a} above ${b}`;
    case 'below':
      return `${b} above ${a}`;
  }
}
const colorKey = (color: string, cls: string): string => `${color} ${cls}`;
const pairKey = (a: string, b: string): string => [a, b].sort().join(' & ');
const attrKey = (ca: string, a: string, cb: string, b: string): string => [colorKey(ca, a), colorKey(cb, b)].sort().join(' & ');

interface Split {
  colors: Array<[Color, Shape]>;
  twoObject: Array<[Shape, Shape]>;
  position: Array<[Shape, 'left of' | 'above', Shape]>;
  colorAttr: Array<[Color, Shape, Color, Shape]>;
  /** every held-out combination key, by kind */
  keys: { colors: Set<string>; two_object: Set<string>; position: Set<string>; color_attr: Set<string> };
}

let splitCache: Split | null = null;

function split(): Split {
  if (splitCache) return splitCache;
  const rng = new Rng(SPLIT_SEED);
  // colours: 20 of the 60 (colour, class) pairs, at most 2 per colour and 4 per class, so training keeps every
  // colour on ≥ 4 classes and every class in ≥ 6 colours.
  const colors: Array<[Color, Shape]> = [];
  const perColor = new Map<string, number>();
  const perClass = new Map<string, number>();
  for (const [c, s] of rng.shuffle(COLORS.flatMap((c) => SHAPES.map((s) => [c, s] as [Color, Shape])))) {
    if (colors.length >= SPLIT_SIZES.colors) break;
    if ((perColor.get(c) ?? 0) >= 2 || (perClass.get(s) ?? 0) >= 4) continue;
    colors.push([c, s]);
    perColor.set(c, (perColor.get(c) ?? 0) + 1);
    perClass.set(s, (perClass.get(s) ?? 0) + 1);
  }
  const pairs: Array<[Shape, Shape]> = [];
  SHAPES.forEach((a, i) => SHAPES.slice(i + 1).forEach((b) => pairs.push([a, b])));
  const twoObject = rng.shuffle(pairs).slice(0, SPLIT_SIZES.two_object);
  const triples: Array<[Shape, 'left of' | 'above', Shape]> = [];
  for (const a of SHAPES) for (const b of SHAPES) if (a !== b) for (const rel of ['left of', 'above'] as const) triples.push([a, rel, b]);
  const position = rng.shuffle(triples).slice(0, SPLIT_SIZES.position);
  const attrs: Array<[Color, Shape, Color, Shape]> = [];
  const seen = new Set<string>();
  while (attrs.length < SPLIT_SIZES.color_attr) {
    const [a, b] = rng.shuffle(SHAPES);
    const [ca, cb] = rng.shuffle(COLORS);
    const key = attrKey(ca as Color, a as Shape, cb as Color, b as Shape);
    if (seen.has(key)) continue;
    seen.add(key);
    attrs.push([ca as Color, a as Shape, cb as Color, b as Shape]);
  }
  splitCache = {
    colors,
    twoObject,
    position,
    colorAttr: attrs,
    keys: {
      colors: new Set(colors.map(([c, s]) => colorKey(c, s))),
      two_object: new Set(twoObject.map(([a, b]) => pairKey(a, b))),
      position: new Set(position.map(([a, rel, b]) => positionKey(a, rel, b))),
      color_attr: new Set(attrs.map(([ca, a, cb, b]) => attrKey(ca, a, cb, b))),
    },
  };
  return splitCache;
}

/** The combinations a spec contains, by kind (what the split holds out). */
export function specCombinations(spec: PromptSpec): { colors: string[]; two_object: string[]; position: string[]; color_attr: string[] } {
  const inc = spec.include;
  const out = { colors: [] as string[], two_object: [] as string[], position: [] as string[], color_attr: [] as string[] };
  for (const c of inc) if (c.color) out.colors.push(colorKey(c.color, c.class));
  inc.forEach((a, i) =>
    inc.slice(i + 1).forEach((b) => {
      if (a.class !== b.class) out.two_object.push(pairKey(a.class, b.class));
      if (a.color && b.color && a.class !== b.class && a.color !== b.color) {
        out.color_attr.push(attrKey(a.color, a.class, b.color, b.class));
      }
    }),
  );
  for (const c of inc) {
    if (!c.position) continue;
    const target = inc[c.position[1]];
    if (target) out.position.push(positionKey(c.class, c.position[0], target.class));
  }
  return out;
}

/** The held-out (test) combination a spec contains, or null: training specs must give null. */
export function heldOutCombination(spec: PromptSpec): string | null {
  const keys = split().keys;
  const combos = specCombinations(spec);
  for (const kind of ['colors', 'two_object', 'position', 'color_attr'] as const) {
    const hit = combos[kind].find((k) => keys[kind].has(k));
    if (hit) return `${kind}: ${hit}`;
  }
  return null;
}

/** The held-out combinations, for documentation and tests. */
export function testCombinations(): { colors: string[]; two_object: string[]; position: string[]; color_attr: string[] } {
  const k = split().keys;
  return { colors: [...k.colors], two_object: [...k.two_object], position: [...k.position], color_attr: [...k.color_attr] };
}

// ---------------------------------------------------------------------------------------------------------------
// GenEval templates


function singleObject(s: Shape): PromptRecord {
  return { tag: 'single_object', include: [{ class: s, count: 1 }], prompt: `a photo of ${withArticle(s)}` };
}
function twoObject(a: Shape, b: Shape): PromptRecord {
  return {
    tag: 'two_object',
    include: [
      { class: a, count: 1 },
      { class: b, count: 1 },
    ],
    prompt: `a photo of ${withArticle(a)} and ${withArticle(b)}`,
  };
}
function counting(s: Shape, n: number): PromptRecord {
  return {
    tag: 'counting',
    include: [{ class: s, count: n }],
    exclude: [{ class: s, count: n + 1 }],
    prompt: `a photo of ${NUMBER_WORDS[n]} ${PLURALS[s]}`,
  };
}
function colorsRecord(c: Color, s: Shape): PromptRecord {
  return { tag: 'colors', include: [{ class: s, count: 1, color: c }], prompt: `a photo of ${withArticle(c)} ${s}` };
}
function positionRecord(a: Shape, rel: Relation, b: Shape): PromptRecord {
  return {
    tag: 'position',
    include: [
      { class: b, count: 1 },
      { class: a, count: 1, position: [rel, 0] },
    ],
    prompt: `a photo of ${withArticle(a)} ${rel} ${withArticle(b)}`,
  };
}
function colorAttr(ca: Color, a: Shape, cb: Color, b: Shape): PromptRecord {
  return {
    tag: 'color_attr',
    include: [
      { class: a, count: 1, color: ca },
      { class: b, count: 1, color: cb },
    ],
    prompt: `a photo of ${withArticle(ca)} ${a} and ${withArticle(cb)} ${b}`,
  };
}

/**
 * The test benchmark in GenEval's schema: every distinct test prompt once per category, capped at GenEval's
 * counts. single_object (6 prompts) and counting (18: every class × 2–4) hold nothing out; two_object lists both
 * orders of its held-out pairs, position both mirror forms of its held-out triples.
 */
export function testPrompts(): PromptRecord[] {
  const sp = split();
  const out: PromptRecord[] = [];
  const cap = (tag: Tag, recs: PromptRecord[]): void => {
    out.push(...recs.slice(0, GENEVAL_COUNTS[tag]));
  };
  cap('single_object', SHAPES.map(singleObject));
  cap('two_object', sp.twoObject.flatMap(([a, b]) => [twoObject(a, b), twoObject(b, a)]));
  cap('counting', SHAPES.flatMap((s) => COUNTS.map((n) => counting(s, n))));
  cap('colors', sp.colors.map(([c, s]) => colorsRecord(c, s)));
  cap('position', sp.position.flatMap(([a, rel, b]) => [positionRecord(a, rel, b), positionRecord(b, MIRROR[rel], a)]));
  cap('color_attr', sp.colorAttr.map(([ca, a, cb, b]) => colorAttr(ca, a, cb, b)));
  return out;
}

/**
 * Seeds per prompt for `eval`, per category, so that each category has ≥ `minImages` judged images; `all` is the
 * one number that serves every category when the harness draws the same count for every prompt.
 */
export function seedsPerPrompt(
  prompts: readonly PromptRecord[] = testPrompts(),
  minImages: number = MIN_IMAGES_PER_CATEGORY,
): Record<Tag, number> & Partial<Record<CompositionalTag, number>> & { all: number } {
  const counts = new Map<string, number>();
  for (const p of prompts) counts.set(p.tag, (counts.get(p.tag) ?? 0) + 1);
  const out = { all: 0 } as Record<Tag, number> & Partial<Record<CompositionalTag, number>> & { all: number };
  for (const tag of [...TAGS, ...COMPOSITIONAL_TAGS.filter((t) => counts.has(t))]) {
    const n = counts.get(tag) ?? 0;
    out[tag] = n ? Math.ceil(minImages / n) : 0;
    out.all = Math.max(out.all, out[tag]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Training prompts: random allowed combinations, each worded by one of several paraphrases.

type Phrase = (rng: Rng) => string;
const a = withArticle;
const REL_WORDS: Record<Relation, string[]> = {
  'left of': ['left of', 'to the left of', 'on the left of'],
  'right of': ['right of', 'to the right of', 'on the right of'],
  above: ['above', 'over', 'on top of'],
  below: ['below', 'under', 'beneath'],
};

function sampleTrainSpec(tag: Tag, rng: Rng): { rec: PromptRecord; words: Phrase[] } {
  switch (tag) {
    case 'single_object': {
      const s = rng.pick(SHAPES);
      return {
        rec: singleObject(s),
        words: [
          () => `a photo of ${a(s)}`,
          () => `an image of ${a(s)}`,
          () => a(s),
          () => `a picture showing ${a(s)}`,
          () => `${a(s)} on a plain gray background`,
          () => `a drawing of one ${s}`,
        ],
      };
    }
    case 'two_object': {
      const [x, y] = rng.shuffle(SHAPES) as [Shape, Shape];
      return {
        rec: twoObject(x, y),
        words: [
          () => `a photo of ${a(x)} and ${a(y)}`,
          () => `${a(x)} next to ${a(y)}`,
          () => `an image with ${a(x)} and ${a(y)}`,
          () => `${a(x)} together with ${a(y)}`,
          () => `a picture of ${a(x)}, and ${a(y)}`,
        ],
      };
    }
    case 'counting': {
      const s = rng.pick(SHAPES);
      const n = rng.pick(COUNTS);
      const w = NUMBER_WORDS[n];
      if (rng.chance(0.25)) {
        const c = rng.pick(COLORS);
        const rec = counting(s, n);
        rec.include = [{ class: s, count: n, color: c }];
        rec.prompt = `a photo of ${w} ${c} ${PLURALS[s]}`;
        return { rec, words: [() => `${w} ${c} ${PLURALS[s]}`, () => `an image showing ${w} ${c} ${PLURALS[s]}`, () => `exactly ${n} ${c} ${PLURALS[s]}`] };
      }
      return {
        rec: counting(s, n),
        words: [
          () => `a photo of ${w} ${PLURALS[s]}`,
          () => `${w} ${PLURALS[s]}`,
          () => `an image showing ${w} ${PLURALS[s]}`,
          () => `exactly ${w} ${PLURALS[s]}`,
          () => `a picture of ${n} ${PLURALS[s]}`,
          () => `${w} ${PLURALS[s]} on a gray background`,
        ],
      };
    }
    case 'colors': {
      const s = rng.pick(SHAPES);
      const c = rng.pick(COLORS);
      return {
        rec: colorsRecord(c, s),
        words: [
          () => `a photo of ${a(c)} ${s}`,
          () => `${a(c)} ${s}`,
          () => `${a(s)} in ${c}`,
          () => `an image of ${a(s)} colored ${c}`,
          () => `a picture with ${a(c)} ${s}`,
        ],
      };
    }
    case 'position': {
      const [x, y] = rng.shuffle(SHAPES) as [Shape, Shape];
      const rel = rng.pick(RELATIONS);
      return {
        rec: positionRecord(x, rel, y),
        words: [
          () => `a photo of ${a(x)} ${rel} ${a(y)}`,
          (r) => `${a(x)} ${r.pick(REL_WORDS[rel])} ${a(y)}`,
          (r) => `an image with ${a(x)} ${r.pick(REL_WORDS[rel])} ${a(y)}`,
          (r) => `${a(x)} placed ${r.pick(REL_WORDS[rel])} ${a(y)}`,
        ],
      };
    }
    case 'color_attr': {
      const [x, y] = rng.shuffle(SHAPES) as [Shape, Shape];
      const [cx, cy] = rng.shuffle(COLORS) as [Color, Color];
      return {
        rec: colorAttr(cx, x, cy, y),
        words: [
          () => `a photo of ${a(cx)} ${x} and ${a(cy)} ${y}`,
          () => `${a(cx)} ${x} next to ${a(cy)} ${y}`,
          () => `an image with ${a(x)} in ${cx} and ${a(y)} in ${cy}`,
          () => `${a(cx)} ${x} together with ${a(cy)} ${y}`,
        ],
      };
    }
  }
}

export interface TrainPromptOptions {
  count: number;
  seed?: number;
  /** restrict to these categories (default: all six, drawn uniformly) */
  tags?: readonly Tag[];
}

/**
 * `count` training prompts, deterministic in `seed`. Each is a GenEval record (the structured spec) whose `prompt`
 * is one of several wordings of that spec. No record contains a held-out test combination (see heldOutCombination).
 */
export function trainPrompts(options: TrainPromptOptions): PromptRecord[] {
  const { count, seed = 0 } = options;
  if (!Number.isInteger(count) || count < 0) throw new UserError(`--count must be a non-negative integer, got ${count}`);
  const tags = options.tags ?? TAGS;
  const rng = new Rng(seed);
  const out: PromptRecord[] = [];
  while (out.length < count) {
    const tag = rng.pick(tags);
    const { rec, words } = sampleTrainSpec(tag, rng);
    if (heldOutCombination(rec) !== null) continue;
    rec.prompt = rng.pick(words)(rng);
    out.push(rec);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// JSONL in GenEval's own formatting (Python json.dumps: ", " and ": " separators, keys in GenEval's order).

function pyJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pyJson).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${JSON.stringify(k)}: ${pyJson(v)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(value);
}

function ordered(rec: PromptRecord): Record<string, unknown> {
  const clause = (c: IncludeClause): Record<string, unknown> => ({ class: c.class, count: c.count, color: c.color, position: c.position });
  return {
    tag: rec.tag,
    include: rec.include.map(clause),
    exclude: rec.exclude?.map((e) => ({ class: e.class, count: e.count })),
    prompt: rec.prompt,
  };
}

/** Records as GenEval-formatted JSON lines (one record a line, trailing newline). */
export function promptsToJsonl(records: readonly PromptRecord[]): string {
  return records.map((r) => pyJson(ordered(r)) + '\n').join('');
}

export type SplitName = 'train' | 'test';

/** The prompts of a split: the test benchmark, or `count` training prompts from `seed`. */
export function splitPrompts(splitName: SplitName, options: { count?: number; seed?: number } = {}): PromptRecord[] {
  if (splitName === 'test') return testPrompts();
  if (splitName === 'train') return trainPrompts({ count: options.count ?? 1000, seed: options.seed ?? 0 });
  throw new UserError(`unknown split '${String(splitName)}' (splits: train, test)`);
}

/** Write a split as GenEval JSONL to `file` (directories created); returns the number of records written. */
export async function writePromptsJsonl(splitName: SplitName, file: string, options: { count?: number; seed?: number } = {}): Promise<number> {
  const recs = splitPrompts(splitName, options);
  makeOutputDir(path.dirname(path.resolve(file)));
  await writeFile(file, promptsToJsonl(recs));
  return recs.length;
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing prompt text back to a spec.

const PREFIXES = [
  'a photo of',
  'a photograph of',
  'an image of',
  'an image with',
  'an image showing',
  'a picture of',
  'a picture with',
  'a picture showing',
  'a drawing of',
  'a scene with',
  'there is',
  'there are',
  'showing',
];
const REL_PHRASES: Array<[string, Relation]> = [
  ['to the left of', 'left of'],
  ['on the left of', 'left of'],
  ['left of', 'left of'],
  ['to the right of', 'right of'],
  ['on the right of', 'right of'],
  ['right of', 'right of'],
  ['on top of', 'above'],
  ['above', 'above'],
  ['over', 'above'],
  ['underneath', 'below'],
  ['beneath', 'below'],
  ['below', 'below'],
  ['under', 'below'],
];
const SEPARATORS = ['together with', 'along with', 'next to', 'and', 'with', ','];
const FILLER = new Set(['placed', 'clearly', 'positioned', 'plain', 'visible']);
const POST_COLOR = ['that is', 'which is', 'colored', 'coloured', 'in'];

type Token = { kind: 'rel'; rel: Relation } | { kind: 'sep' } | { kind: 'word'; word: string };

/** Every word the parser reads, for "did you mean". */
function knownWords(): string[] {
  const phrases = [...REL_PHRASES.map(([p]) => p), ...REGION_PHRASES.map(([p]) => p), ...SEPARATORS, ...POST_COLOR, ...FILLER];
  return [...new Set([...SHAPES, ...SHAPES.map((s) => PLURALS[s]), ...COLORS, ...NUMBER_WORDS, 'exactly', ...phrases.flatMap((p) => p.split(/\s+/))])];
}

/** What ShapeWorld's prompts are made of, short: the words a reader most likely reached for. How far a backend counts is its own to say. */
function vocabulary(): string {
  return `the shapes ${SHAPES.join(', ')}, the colors ${COLORS.join(', ')}, counts, left of / right of / above / below and places such as 'at the top left'`;
}

function tokenize(text: string): Token[] {
  let s = ` ${text.toLowerCase().replace(/-/g, ' ').replace(/[.;:!?]/g, ' , ').replace(/,/g, ' , ')} `.replace(/\s+/g, ' ');
  s = s.replace(/ (on|against) (a |the )?(plain )?(mid )?(gray|grey) background /g, ' ');
  const trimmed = s.trim();
  for (const p of PREFIXES) {
    if (trimmed === p || trimmed.startsWith(p + ' ')) {
      s = ' ' + trimmed.slice(p.length) + ' ';
      break;
    }
  }
  const words = s.trim().split(' ').filter(Boolean);
  const tokens: Token[] = [];
  let i = 0;
  const matchAt = (phrase: string): boolean => {
    const pw = phrase.split(' ');
    return pw.every((w, k) => words[i + k] === w);
  };
  outer: while (i < words.length) {
    for (const [phrase, rel] of REL_PHRASES) {
      if (matchAt(phrase)) {
        tokens.push({ kind: 'rel', rel });
        i += phrase.split(' ').length;
        continue outer;
      }
    }
    // a place on the image ("at the top left"): a placement hint of the object before it, not part of the spec
    for (const [phrase] of REGION_PHRASES) {
      if (matchAt(phrase) && tokens.at(-1)?.kind === 'word') {
        i += phrase.split(' ').length;
        continue outer;
      }
    }
    for (const sep of SEPARATORS) {
      if (matchAt(sep)) {
        if (tokens.at(-1)?.kind !== 'sep') tokens.push({ kind: 'sep' });
        i += sep.split(' ').length;
        continue outer;
      }
    }
    for (const pc of POST_COLOR) {
      const pw = pc.split(' ');
      if (matchAt(pc) && isColor(words[i + pw.length] ?? '')) {
        tokens.push({ kind: 'word', word: `=${words[i + pw.length]}` });
        i += pw.length + 1;
        continue outer;
      }
    }
    const w = words[i] as string;
    i++;
    if (!FILLER.has(w)) tokens.push({ kind: 'word', word: w });
  }
  while (tokens[0]?.kind === 'sep') tokens.shift();
  while (tokens.at(-1)?.kind === 'sep') tokens.pop();
  return tokens;
}

interface NounPhrase {
  shape: Shape;
  count: number;
  exact: boolean;
  color?: Color;
}

const SINGULAR: Record<string, Shape> = Object.fromEntries([
  ...SHAPES.map((s) => [s, s]),
  ...SHAPES.map((s) => [PLURALS[s], s]),
  ...SHAPES.map((s) => [`${s}s`, s]),
]) as Record<string, Shape>;

/**
 * Parse a ShapeWorld prompt (GenEval's templates, the training paraphrases, the refiner's wording) to a GenEval
 * spec: noun phrases `[exactly] [number] [colour] shape [in colour]` joined by and/with/next to/commas, a relation
 * between two noun phrases (`A left of B` gives GenEval's `[B, A@left of 0]`), and number words ≥ 2 or `exactly`
 * meaning an exact count (an exclude clause at count + 1, as GenEval's counting). Throws a UserError naming the
 * word and listing the vocabulary when a prompt uses words ShapeWorld does not know.
 */
export function parsePrompt(text: string): PromptSpec {
  const tokens = tokenize(text);
  let pos = 0;
  const fail = (why: string): never => {
    // a suggestion says enough; an unknown word without one gets the vocabulary, in short
    const known = /^unknown word/.test(why) && !/did you mean/.test(why) ? ` (ShapeWorld knows ${vocabulary()})` : '';
    throw new UserError(`cannot parse prompt ${JSON.stringify(text)}: ${why}${known}`);
  };
  const nounPhrase = (): NounPhrase => {
    let count: number | null = null;
    let exact = false;
    let color: Color | undefined;
    for (;;) {
      const t = tokens[pos];
      if (!t) return fail('expected an object, found the end of the prompt');
      if (t.kind !== 'word') return fail(`expected an object, found ${t.kind === 'rel' ? `'${t.rel}'` : 'a separator'}`);
      const w = t.word;
      pos++;
      if (w === 'exactly' || w === 'only' || w === 'single') {
        exact = exact || w !== 'single';
        if (w === 'single') count ??= 1;
        continue;
      }
      if (w === 'a' || w === 'an' || w === 'the') {
        count ??= 1;
        continue;
      }
      const n = NUMBER_WORDS.indexOf(w as (typeof NUMBER_WORDS)[number]);
      if (n >= 1 || /^[1-9]$/.test(w)) {
        count = n >= 1 ? n : Number(w);
        continue;
      }
      if (isColor(w)) {
        if (color) fail(`two colors for one object ('${color}', '${w}')`);
        color = w;
        continue;
      }
      const shape = SINGULAR[w];
      if (shape) {
        const next = tokens[pos];
        if (next?.kind === 'word' && next.word.startsWith('=')) {
          if (color) fail(`two colors for one ${shape}`);
          color = next.word.slice(1) as Color;
          pos++;
        }
        const c = count ?? 1;
        return { shape, count: c, exact: exact || c >= 2, ...(color ? { color } : {}) };
      }
      if (w.startsWith('=')) return fail(`a color ('${w.slice(1)}') before any object`);
      if (/^\d+$/.test(w)) return fail(`ShapeWorld counts one to ten (1–9 in digits); '${w}' is beyond it`);
      return fail(isShape(w) ? `misplaced '${w}'` : `unknown word ${unknownWord(w, knownWords())}`);
    }
  };
  const include: IncludeClause[] = [];
  const exclude: Array<{ class: string; count: number }> = [];
  const emit = (np: NounPhrase, position?: [Relation, number]): number => {
    include.push({ class: np.shape, count: np.count, ...(np.color ? { color: np.color } : {}), ...(position ? { position } : {}) });
    if (np.exact && !exclude.some((e) => e.class === np.shape && e.count === np.count + 1)) {
      exclude.push({ class: np.shape, count: np.count + 1 });
    }
    return include.length - 1;
  };
  if (tokens.length === 0) fail('no object named');
  for (;;) {
    const first = nounPhrase();
    const t = tokens[pos];
    if (t?.kind === 'rel') {
      pos++;
      const ref = nounPhrase();
      const idx = emit(ref);
      emit(first, [t.rel, idx]);
    } else {
      emit(first);
    }
    const after = tokens[pos];
    if (!after) break;
    if (after.kind === 'sep') {
      pos++;
      continue;
    }
    fail(after.kind === 'rel' ? `a second relation ('${after.rel}') in one phrase` : `unexpected '${after.word.replace(/^=/, '')}'`);
  }
  return exclude.length ? { include, exclude } : { include };
}

/** Guess a GenEval tag for a parsed spec (for prompts given as text only). */
export function inferTag(spec: PromptSpec): Tag {
  const inc = spec.include;
  if (inc.some((c) => c.position)) return 'position';
  if (inc.length >= 2 && inc.filter((c) => c.color).length >= 2) return 'color_attr';
  if (inc.length >= 2) return 'two_object';
  if ((spec.exclude?.length ?? 0) > 0 || (inc[0]?.count ?? 1) >= 2) return 'counting';
  if (inc[0]?.color) return 'colors';
  return 'single_object';
}
