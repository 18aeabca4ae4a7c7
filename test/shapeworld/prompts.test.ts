import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.js';
import {
  GENEVAL_COUNTS,
  heldOutCombination,
  inferTag,
  parsePrompt,
  promptsToJsonl,
  seedsPerPrompt,
  specCombinations,
  testCombinations,
  testPrompts,
  trainPrompts,
  writePromptsJsonl,
} from '../../src/shapeworld/prompts.js';
import { RELATIONS, TAGS } from '../../src/shapeworld/rules.js';
import { COLORS, SHAPES } from '../../src/shapeworld/shapes.js';

const geneval = readFileSync(path.join(__dirname, '../fixtures/geneval_evaluation_metadata.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('test split in GenEval schema', () => {
  const recs = testPrompts();

  it('has all six categories, capped at GenEval counts, each prompt distinct', () => {
    const byTag = new Map<string, number>();
    for (const r of recs) byTag.set(r.tag, (byTag.get(r.tag) ?? 0) + 1);
    expect([...byTag.keys()]).toEqual([...TAGS]);
    for (const t of TAGS) {
      expect(byTag.get(t)).toBeGreaterThan(0);
      expect(byTag.get(t)).toBeLessThanOrEqual(GENEVAL_COUNTS[t]);
    }
    expect(byTag.get('single_object')).toBe(SHAPES.length);
    expect(byTag.get('counting')).toBe(SHAPES.length * 3);
    expect(new Set(recs.map((r) => r.prompt)).size).toBe(recs.length);
  });

  it('uses exactly the key sets and clause shapes GenEval uses per category', () => {
    const shape = (r: Record<string, unknown>): string =>
      JSON.stringify({
        keys: Object.keys(r),
        include: (r.include as Array<Record<string, unknown>>).map((c) => Object.keys(c)),
        exclude: (r.exclude as Array<Record<string, unknown>> | undefined)?.map((c) => Object.keys(c)),
      });
    for (const tag of TAGS) {
      const theirs = new Set(geneval.filter((g) => g.tag === tag).map(shape));
      const ours = new Set(recs.filter((r) => r.tag === tag).map((r) => shape(JSON.parse(promptsToJsonl([r])) as Record<string, unknown>)));
      expect([...ours], tag).toEqual([...theirs]);
    }
  });

  it('formats lines the way GenEval writes them', () => {
    const lines = promptsToJsonl(recs).trim().split('\n');
    const counting = lines.find((l) => l.includes('"counting"'));
    expect(counting).toMatch(/^\{"tag": "counting", "include": \[\{"class": "\w+", "count": (\d)\}\], "exclude": \[\{"class": "\w+", "count": \d\}\], "prompt": "a photo of \w+ \w+"\}$/);
    const pos = recs.find((r) => r.tag === 'position')!;
    expect(pos.include).toHaveLength(2);
    expect(pos.include[0]).toEqual({ class: pos.include[0]!.class, count: 1 });
    expect(pos.include[1]!.position?.[1]).toBe(0);
    expect(RELATIONS).toContain(pos.include[1]!.position?.[0]);
    expect(pos.prompt).toBe(`a photo of a ${pos.include[1]!.class} ${pos.include[1]!.position![0]} a ${pos.include[0]!.class}`.replace(/ a ([aeiou])/g, ' an $1'));
    for (const r of recs.filter((x) => x.tag === 'counting')) {
      const n = r.include[0]!.count;
      expect(n).toBeGreaterThanOrEqual(2);
      expect(n).toBeLessThanOrEqual(4);
      expect(r.exclude).toEqual([{ class: r.include[0]!.class, count: n + 1 }]);
    }
    for (const r of recs.filter((x) => x.tag === 'color_attr')) {
      expect(r.include.map((c) => Object.keys(c))).toEqual([
        ['class', 'count', 'color'],
        ['class', 'count', 'color'],
      ]);
    }
  });

  it('every test prompt parses back to its own record and tag', () => {
    for (const r of recs) {
      const spec = parsePrompt(r.prompt);
      expect(spec, r.prompt).toEqual(r.exclude ? { include: r.include, exclude: r.exclude } : { include: r.include });
      expect(inferTag(spec)).toBe(r.tag);
    }
  });

  it('tells how many seeds per prompt give every category ≥ 80 images', () => {
    const s = seedsPerPrompt(recs);
    for (const t of TAGS) {
      const n = recs.filter((r) => r.tag === t).length;
      expect(n * s[t]).toBeGreaterThanOrEqual(80);
      expect(n * (s[t] - 1)).toBeLessThan(80);
      expect(n * s.all).toBeGreaterThanOrEqual(80);
    }
    expect(s.all).toBe(Math.max(...TAGS.map((t) => s[t])));
  });
});

describe('training prompts', () => {
  it('never contain a held-out combination (5,000 prompts, checked from the parsed text)', () => {
    const train = trainPrompts({ count: 5000, seed: 3 });
    expect(train).toHaveLength(5000);
    const held = testCombinations();
    const heldSets = {
      colors: new Set(held.colors),
      two_object: new Set(held.two_object),
      position: new Set(held.position),
      color_attr: new Set(held.color_attr),
    };
    for (const r of train) {
      const fromText = specCombinations(parsePrompt(r.prompt));
      for (const kind of ['colors', 'two_object', 'position', 'color_attr'] as const) {
        for (const k of fromText[kind]) expect(heldSets[kind].has(k), `${r.prompt}: ${kind} ${k}`).toBe(false);
      }
    }
    // and every test prompt does contain one (the check can fail), except the categories that hold nothing out
    for (const r of testPrompts()) {
      if (r.tag === 'single_object' || r.tag === 'counting') continue;
      expect(heldOutCombination(parsePrompt(r.prompt)), r.prompt).not.toBeNull();
    }
  });

  it('are paraphrased, deterministic, cover all categories, and their text parses to their spec', () => {
    const a = trainPrompts({ count: 600, seed: 11 });
    expect(trainPrompts({ count: 600, seed: 11 })).toEqual(a);
    expect(trainPrompts({ count: 600, seed: 12 })).not.toEqual(a);
    expect(new Set(a.map((r) => r.tag))).toEqual(new Set(TAGS));
    const notTemplate = a.filter((r) => !r.prompt.startsWith('a photo of'));
    expect(notTemplate.length).toBeGreaterThan(300);
    for (const r of a) {
      expect(parsePrompt(r.prompt), r.prompt).toEqual(r.exclude ? { include: r.include, exclude: r.exclude } : { include: r.include });
    }
    expect(a.some((r) => /to the left of|on top of|beneath|next to/.test(r.prompt))).toBe(true);
    expect(a.some((r) => r.tag === 'counting' && r.include[0]!.color)).toBe(true);
  });

  it('keep every class and colour in training', () => {
    const a = trainPrompts({ count: 3000, seed: 5 });
    const seenColorClass = new Set(a.flatMap((r) => r.include.filter((c) => c.color).map((c) => `${c.color} ${c.class}`)));
    for (const c of COLORS) expect([...seenColorClass].some((k) => k.startsWith(`${c} `))).toBe(true);
    for (const s of SHAPES) expect([...seenColorClass].some((k) => k.endsWith(` ${s}`))).toBe(true);
  });

  it('writes JSONL files', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sw-prompts-'));
    const file = path.join(dir, 'sub', 'train.jsonl');
    const n = await writePromptsJsonl('train', file, { count: 25, seed: 2 });
    expect(n).toBe(25);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(25);
    expect(JSON.parse(lines[0]!)).toEqual(JSON.parse(promptsToJsonl(trainPrompts({ count: 1, seed: 2 })).trim()));
  });
});

describe('parsePrompt', () => {
  it('reads paraphrases, relations and colours', () => {
    expect(parsePrompt('two red circles')).toEqual({
      include: [{ class: 'circle', count: 2, color: 'red' }],
      exclude: [{ class: 'circle', count: 3 }],
    });
    expect(parsePrompt('An image with a star to the left of a square.')).toEqual({
      include: [
        { class: 'square', count: 1 },
        { class: 'star', count: 1, position: ['left of', 0] },
      ],
    });
    expect(parsePrompt('a cross in blue next to a yellow diamond')).toEqual({
      include: [
        { class: 'cross', count: 1, color: 'blue' },
        { class: 'diamond', count: 1, color: 'yellow' },
      ],
    });
    expect(parsePrompt('exactly one triangle beneath a circle on a plain gray background')).toEqual({
      include: [
        { class: 'circle', count: 1 },
        { class: 'triangle', count: 1, position: ['below', 0] },
      ],
      exclude: [{ class: 'triangle', count: 2 }],
    });
  });

  it('rejects unknown words and classes with the vocabulary, in short', () => {
    expect(() => parsePrompt('a photo of a dog')).toThrow(UserError);
    expect(() => parsePrompt('a photo of a dog')).toThrow(/unknown word 'dog'.*the shapes circle, square, triangle, star, diamond, cross,/);
    expect(() => parsePrompt('a photo of a teal star')).toThrow(/unknown word 'teal'.*the colors red, orange/);
    // one line a reader takes in: no list of every relation, place and joining word
    expect(() => parsePrompt('a photo of a teal star')).toThrow(expect.objectContaining({ message: expect.stringMatching(/^.{0,330}$/) }));
    expect(() => parsePrompt('12 red squares')).toThrow(/ShapeWorld counts one to ten \(1–9 in digits\); '12' is beyond it/);
    expect(() => parsePrompt('')).toThrow(/no object/);
    expect(() => parsePrompt('a red')).toThrow(/end of the prompt/);
    expect(() => parsePrompt('a star left of')).toThrow(UserError);
  });
});
