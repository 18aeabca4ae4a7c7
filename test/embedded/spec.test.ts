import { describe, expect, it } from 'vitest';
import { encodePrompt, encodeSpec, EXCLUDE_FIELDS, INCLUDE_FIELDS, INCLUDE_SLOTS, SPEC_LENGTH } from '../../src/backends/embedded/spec.js';
import { UserError } from '../../src/core/errors.js';
import { COLORS, SHAPES } from '../../src/shapeworld/shapes.js';

const cls = (s: string) => SHAPES.indexOf(s as never) + 1;
const col = (c: string) => COLORS.indexOf(c as never) + 1;
const include = (row: Int32Array, i: number) => [...row.subarray(i * INCLUDE_FIELDS, (i + 1) * INCLUDE_FIELDS)];
const exclude = (row: Int32Array, i: number) => {
  const o = INCLUDE_SLOTS * INCLUDE_FIELDS + i * EXCLUDE_FIELDS;
  return [...row.subarray(o, o + EXCLUDE_FIELDS)];
};

describe('the verifier reads a prompt as its parse', () => {
  it('lays out classes, colours, counts, relations and exact counts', () => {
    const a = encodePrompt('a photo of a red circle left of a blue square');
    expect(a.length).toBe(SPEC_LENGTH);
    // GenEval's order: the reference object first, the related one second, pointing back at it
    expect(include(a, 0)).toEqual([cls('square'), col('blue'), 1, 0, 0]);
    expect(include(a, 1)).toEqual([cls('circle'), col('red'), 1, 1, 0]);
    expect(include(a, 2)).toEqual([0, 0, 0, 0, 0]);
    const b = encodePrompt('a photo of three stars');
    expect(include(b, 0)).toEqual([cls('star'), 0, 3, 0, 0]);
    expect(exclude(b, 0)).toEqual([cls('star'), 4]);
    expect(exclude(b, 1)).toEqual([0, 0]);
    // paraphrases of one spec read the same
    expect([...encodePrompt('an image showing a green triangle')]).toEqual([...encodePrompt('a photo of a green triangle')]);
  });

  it('refuses what it cannot read with a UserError naming the problem', () => {
    expect(() => encodePrompt('a photo of a cat')).toThrow(/unknown word 'cat'/);
    expect(() => encodePrompt('   ')).toThrow(UserError);
    const many = { include: ['circle', 'square', 'star', 'cross', 'diamond'].map((c) => ({ class: c, count: 1 })) };
    expect(() => encodeSpec(many)).toThrow(/at most 4 objects/);
    // the counter tells apart 0..9 (9 = nine or more): "exactly nine" would need "not ten or more"
    expect(include(encodePrompt('eight stars'), 0)).toEqual([cls('star'), 0, 8, 0, 0]);
    expect(exclude(encodePrompt('eight stars'), 0)).toEqual([cls('star'), 9]);
    expect(() => encodePrompt('nine stars')).toThrow(/counts up to 9 objects .*a count of 10/);
    expect(() => encodePrompt('ten stars')).toThrow(UserError);
  });

  it('reads mirrored wordings of one scene as one input', () => {
    const pairs: Array<[string, string]> = [
      ['a square left of a circle', 'a circle right of a square'],
      ['a red star above a blue cross', 'a blue cross below a red star'],
      ['two circles to the left of a square', 'a square to the right of two circles'],
    ];
    for (const [a, b] of pairs) expect([...encodePrompt(b)]).toEqual([...encodePrompt(a)]);
    // the canonical form is left of / above, the reference object first
    const c = encodePrompt('a circle right of a square');
    expect(include(c, 0)).toEqual([cls('circle'), 0, 1, 0, 0]);
    expect(include(c, 1)).toEqual([cls('square'), 0, 1, 1, 0]);
    // not a mirror: different scenes stay different
    expect([...encodePrompt('a circle left of a square')]).not.toEqual([...encodePrompt('a square left of a circle')]);
  });
});
