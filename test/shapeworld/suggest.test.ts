import { describe, expect, it } from 'vitest';
import { nearestWords, unknownWord } from '../../src/shapeworld/suggest.js';
import { COLORS, PLURALS, SHAPES } from '../../src/shapeworld/shapes.js';

const KNOWN = [...SHAPES, ...SHAPES.map((s) => PLURALS[s]), ...COLORS, 'gray', 'above', 'below', 'at'];

describe('did you mean', () => {
  it('maps the words people use to ShapeWorld’s, plurals to plurals, typos to the nearest words', () => {
    expect(nearestWords('cube', KNOWN)).toEqual(['square']);
    expect(nearestWords('cubes', KNOWN)).toEqual(['squares']);
    expect(nearestWords('grey', KNOWN)).toEqual(['gray']);
    expect(nearestWords('violet', KNOWN)).toEqual(['purple']);
    expect(nearestWords('tringle', KNOWN)).toEqual(['triangle', 'triangles']);
    expect(nearestWords('cat', KNOWN)).toEqual([]); // not 'at'
    expect(nearestWords('grey', SHAPES)).toEqual([]); // a synonym whose target is unknown says nothing
    expect(unknownWord('cube', KNOWN)).toBe("'cube' (did you mean 'square'?)");
    expect(unknownWord('giraffe', KNOWN)).toBe("'giraffe'");
  });
});
