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

  it('removes the smallest surplus object, whatever the detector scored', () => {
    const spec = parsePrompt('a photo of two circles');
    const byArea = planEdits([big, mid, small], spec);
    expect(byArea).toEqual([{ op: 'remove', object: { shape: 'circle', color: 'white' } }]);
    // the perception is most sure of the small one and least of the big one: the plan must not follow that
    const byConfidence = planEdits([asConfidence(small, 0.99), asConfidence(mid, 0.9), asConfidence(big, 0.6)], spec);
    expect(byConfidence).toEqual(byArea);
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
});
