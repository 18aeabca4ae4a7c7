import { describe, expect, it } from 'vitest';
import { planEdits } from '../../src/shapeworld/edits.js';
import { parsePrompt } from '../../src/shapeworld/prompts.js';
import type { Detection } from '../../src/shapeworld/rules.js';
import type { Color, Shape } from '../../src/shapeworld/shapes.js';

function det(shape: Shape, color: Color, cx: number, cy: number, side: number, score: number): Detection {
  return { shape, color, cx, cy, r: side / 2, box: [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], score };
}

describe('planEdits', () => {
  // one image read by two detectors: the evaluator scores an object by its area, the learned perception by its confidence
  const big = det('circle', 'red', 0.2, 0.2, 0.3, 0.09);
  const mid = det('circle', 'blue', 0.7, 0.3, 0.2, 0.04);
  const small = det('circle', 'white', 0.5, 0.8, 0.12, 0.014);
  const asConfidence = (d: Detection, p: number): Detection => ({ ...d, score: p });

  it('removes the last surplus object in reading order, whatever the detector scored', () => {
    const spec = parsePrompt('a photo of two circles');
    const byArea = planEdits([big, mid, small], spec);
    expect(byArea).toEqual([{ op: 'remove', object: { shape: 'circle', color: 'white' } }]);
    // the perception is most sure of the small one and least of the big one: the plan must not follow that
    const byConfidence = planEdits([asConfidence(small, 0.99), asConfidence(mid, 0.9), asConfidence(big, 0.6)], spec);
    expect(byConfidence).toEqual(byArea);
  });

  it('plans the same removal from two readings that differ in the sizes of alike objects', () => {
    // the evaluator measures the first circle a little larger than the second, the perception a little smaller
    const spec = parsePrompt('a photo of three circles');
    const evaluator = [det('circle', 'pink', 0.2, 0.24, 0.19, 0.036), det('circle', 'pink', 0.6, 0.25, 0.18, 0.032), det('circle', 'green', 0.83, 0.37, 0.18, 0.032), det('circle', 'black', 0.5, 0.6, 0.185, 0.034), det('circle', 'yellow', 0.63, 0.84, 0.2, 0.04)];
    const sizes = [0.19, 0.185, 0.18, 0.182, 0.2];
    const perception = evaluator.map((d, i) => ({ ...det(d.shape, d.color, d.cx, d.cy, sizes[i]!, 0.99 - i / 100) }));
    const plan = planEdits(evaluator, spec);
    expect(plan).toEqual([
      { op: 'remove', object: { shape: 'circle', color: 'yellow' } },
      { op: 'remove', object: { shape: 'circle', color: 'black' } },
    ]);
    expect(planEdits(perception, spec)).toEqual(plan);
    expect(planEdits(perception.slice().reverse(), spec)).toEqual(plan);
  });

  it('takes the larger of two alike objects for a relation, as the relation is judged on it', () => {
    // "a circle left of a square": the large circle is on the square's right, a small one on its left
    const square = det('square', 'blue', 0.5, 0.5, 0.2, 0.04);
    const large = det('circle', 'red', 0.85, 0.5, 0.25, 0.06);
    const small = det('circle', 'white', 0.15, 0.5, 0.12, 0.014);
    expect(planEdits([small, square, large], parsePrompt('a photo of a circle left of a square'))).toEqual([
      { op: 'move', object: { shape: 'circle', color: 'red' }, relation: { rel: 'left of', ref: { shape: 'square', color: 'blue' } } },
    ]);
  });

  it('breaks ties of size in reading order, not in the order detections come', () => {
    const spec = parsePrompt('a photo of two circles');
    const top = det('circle', 'green', 0.7, 0.2, 0.2, 0.5);
    const middle = det('circle', 'red', 0.2, 0.45, 0.2, 0.5);
    const bottom = det('circle', 'pink', 0.3, 0.7, 0.2, 0.5);
    const plan = planEdits([top, middle, bottom], spec);
    expect(plan).toEqual([{ op: 'remove', object: { shape: 'circle', color: 'pink' } }]);
    expect(planEdits([bottom, top, middle], spec)).toEqual(plan);
    expect(planEdits([middle, bottom, top], spec)).toEqual(plan);
  });

  it('places a missing anchor where the relation wants it, relative to the object that is there', () => {
    // "a cross right of a star" with only the star drawn: the cross goes to the star's right, not anywhere
    const star = det('star', 'white', 0.5, 0.3, 0.25, 0.05);
    expect(planEdits([star], parsePrompt('a photo of a cross right of a star'))).toEqual([
      { op: 'add', object: { shape: 'cross' }, relation: { rel: 'right of', ref: { shape: 'star', color: 'white' } } },
    ]);
    // the anchor's clause comes second in the spec: the same edit
    const cross = det('cross', 'brown', 0.5, 0.3, 0.25, 0.05);
    expect(planEdits([cross], parsePrompt('a photo of a cross right of a star'))).toEqual([
      { op: 'add', object: { shape: 'star' }, relation: { rel: 'left of', ref: { shape: 'cross', color: 'brown' } } },
    ]);
  });

  it('checks a relation against the object a wrong colour was replaced in, not another of its class', () => {
    // "a red circle above a blue square": the only square is green and above the circle
    const circle = det('circle', 'red', 0.5, 0.7, 0.2, 0.04);
    const square = det('square', 'green', 0.5, 0.2, 0.2, 0.04);
    const plan = planEdits([circle, square], parsePrompt('a photo of a red circle above a blue square'));
    expect(plan).toContainEqual({ op: 'replace', object: { shape: 'square', color: 'green' }, with: { shape: 'square', color: 'blue' } });
    expect(plan.some((e) => e.op === 'move')).toBe(true);
  });
});
