import { describe, expect, it } from 'vitest';
import { silhouette } from '../../src/backends/embedded/corrector.js';
import { editRegion } from '../../src/backends/embedded/region.js';
import type { Detection } from '../../src/shapeworld/rules.js';
import { PALETTE, SHAPES, type Color, type Shape } from '../../src/shapeworld/shapes.js';

const S = 32;

function det(shape: Shape, color: Color, cx: number, cy: number, r = 0.12): Detection {
  return { shape, color, cx, cy, r, box: [cx - r, cy - r, cx + r, cy + r], score: 0.9 };
}

/** The marked pixels' bounding box [x1, y1, x2, y2] in pixels, null when none is marked. */
function bounds(mask: Float32Array, keep: (x: number, y: number) => boolean = () => true): [number, number, number, number] | null {
  let b: [number, number, number, number] | null = null;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      if (!mask[y * S + x] || !keep(x, y)) continue;
      b = b ? [Math.min(b[0], x), Math.min(b[1], y), Math.max(b[2], x), Math.max(b[3], y)] : [x, y, x, y];
    }
  }
  return b;
}

const marked = (mask: Float32Array, cx: number, cy: number): boolean => mask[Math.floor(cy * S) * S + Math.floor(cx * S)] === 1;

describe('editRegion: where a reflection asks the corrector to change the image', () => {
  const circle = det('circle', 'red', 0.25, 0.5);
  const square = det('square', 'blue', 0.75, 0.5);

  it('a recolour marks the object it changes, grown by a pixel, and nothing else', () => {
    const mask = editRegion([circle, square], ['Replace the red circle with a green circle'], S, 1);
    // the circle's box spans 0.13..0.37 of the side: pixels 4..11, grown to 3..12
    expect(bounds(mask)).toEqual([3, 11, 12, 20]);
    expect(marked(mask, square.cx, square.cy)).toBe(false);
  });

  it('a removal marks the object removed; an edit naming an object the image lacks marks nothing', () => {
    expect(bounds(editRegion([circle, square], ['Remove the blue square'], S, 1))).toEqual([19, 11, 28, 20]);
    expect(bounds(editRegion([circle, square], ['Remove the green star'], S, 1))).toBeNull();
    expect(bounds(editRegion([circle, square], ['Make it nicer'], S, 1))).toBeNull();
    expect(bounds(editRegion([], ['Remove the blue square'], S, 1))).toBeNull();
  });

  it('a move marks where the object was and where it goes, on the asked side of its anchor, never the anchor', () => {
    const anchor = det('square', 'blue', 0.5, 0.65, 0.08);
    for (const seed of [3, 4, 5]) {
      const moved = editRegion([det('circle', 'red', 0.2, 0.88, 0.08), anchor], ['Move the red circle above the blue square'], S, seed);
      expect(marked(moved, 0.2, 0.88)).toBe(true);
      expect(marked(moved, anchor.cx, anchor.cy)).toBe(false);
      // the new place: marked pixels above the square's box
      expect(bounds(moved, (_, y) => y < Math.floor(anchor.box[1] * S) - 1)).not.toBeNull();
    }
  });

  it('an add with a relation marks a box on that side of its anchor only; several edits add up', () => {
    const mask = editRegion([square], ['Add a red circle to the left of the blue square'], S, 7);
    const b = bounds(mask)!;
    expect(b[2]).toBeLessThan(Math.ceil(square.box[0] * S) + 1);
    expect(marked(mask, square.cx, square.cy)).toBe(false);
    const both = editRegion([circle, square], ['Remove the blue square', 'Replace the red circle with a green circle'], S, 1);
    expect(marked(both, circle.cx, circle.cy) && marked(both, square.cx, square.cy)).toBe(true);
  });

  it('is deterministic in its inputs; the seed only decides where new objects go', () => {
    const items = ['Add a green star'];
    const a = editRegion([circle, square], items, S, 11);
    expect(editRegion([circle, square], items, S, 11)).toEqual(a);
    const others = [12, 13, 14, 15].map((seed) => editRegion([circle, square], items, S, seed));
    expect(others.some((m) => bounds(m)!.join() !== bounds(a)!.join())).toBe(true);
    const remove = ['Remove the red circle'];
    expect(editRegion([circle, square], remove, S, 1)).toEqual(editRegion([circle, square], remove, S, 2));
  });

  it('in two channels: what goes away or changes in the first, what is drawn in the second, their union the one mask', () => {
    const anchor = det('square', 'blue', 0.5, 0.65, 0.08);
    const objects = [det('circle', 'red', 0.2, 0.88, 0.08), anchor];
    const move = ['Move the red circle above the blue square'];
    const two = editRegion(objects, move, S, 3, { channels: 2 });
    const [erase, draw] = [two.subarray(0, S * S), two.subarray(S * S)];
    expect(marked(erase, 0.2, 0.88)).toBe(true);
    expect(marked(draw, 0.2, 0.88)).toBe(false);
    expect(bounds(erase, (_, y) => y < Math.floor(anchor.box[1] * S) - 1)).toBeNull();
    expect(bounds(draw, (_, y) => y < Math.floor(anchor.box[1] * S) - 1)).not.toBeNull();
    expect(erase.map((v, k) => Math.max(v, draw[k]!))).toEqual(editRegion(objects, move, S, 3));
    // a recolour changes the object where it is: the same box in both
    const recolour = editRegion([circle, square], ['Replace the red circle with a green circle'], S, 1, { channels: 2 });
    expect(bounds(recolour.subarray(0, S * S))).toEqual([3, 11, 12, 20]);
    expect(bounds(recolour.subarray(S * S))).toEqual([3, 11, 12, 20]);
    // an add only draws, a removal only erases
    const add = editRegion([square], ['Add a red circle to the left of the blue square'], S, 7, { channels: 2 });
    expect(bounds(add.subarray(0, S * S))).toBeNull();
    expect(bounds(add.subarray(S * S))).not.toBeNull();
    const remove = editRegion([circle, square], ['Remove the blue square'], S, 1, { channels: 2 });
    expect(bounds(remove.subarray(0, S * S))).toEqual([19, 11, 28, 20]);
    expect(bounds(remove.subarray(S * S))).toBeNull();
  });
});

describe('editRegion: the colour hint', () => {
  const circle = det('circle', 'red', 0.25, 0.5);
  const square = det('square', 'blue', 0.75, 0.5);
  const layout = { channels: 2 as const, hint: PALETTE };
  /** The hint's colour (0–255) at a pixel, null where it gives none. */
  const hintAt = (region: Float32Array, x: number, y: number): number[] | null => {
    const rgb = [2, 3, 4].map((c) => region[c * S * S + y * S + x]!);
    return rgb.every((v) => v === 0) ? null : rgb.map((v) => Math.round((v + 1) * 127.5));
  };

  it('gives a recoloured object its new colour over its draw box, and nothing outside the draw boxes', () => {
    const region = editRegion([circle, square], ['Replace the red circle with a green circle'], S, 1, layout);
    expect(region.length).toBe(5 * S * S);
    expect(region.subarray(0, 2 * S * S)).toEqual(editRegion([circle, square], ['Replace the red circle with a green circle'], S, 1, { channels: 2 }));
    expect(hintAt(region, 8, 16)).toEqual([...PALETTE.green]);
    for (let p = 0; p < S * S; p++) if (!region[S * S + p]) expect(hintAt(region, p % S, Math.floor(p / S))).toBeNull();
  });

  it('gives a moved object the colour it was read in, an Add its named colour, and an uncoloured Add none', () => {
    const moved = editRegion([det('circle', 'red', 0.2, 0.88, 0.08), det('square', 'blue', 0.5, 0.65, 0.08)], ['Move the red circle above the blue square'], S, 3, layout);
    const drawn = (region: Float32Array): number[] => Array.from({ length: S * S }, (_, p) => p).filter((p) => region[S * S + p]! > 0);
    expect(drawn(moved).length).toBeGreaterThan(0);
    for (const p of drawn(moved)) expect(hintAt(moved, p % S, Math.floor(p / S))).toEqual([...PALETTE.red]);
    const named = editRegion([square], ['Add a yellow star to the left of the blue square'], S, 7, layout);
    for (const p of drawn(named)) expect(hintAt(named, p % S, Math.floor(p / S))).toEqual([...PALETTE.yellow]);
    const unnamed = editRegion([square], ['Add a star to the left of the blue square'], S, 7, layout);
    expect(drawn(unnamed).length).toBeGreaterThan(0);
    expect(unnamed.subarray(2 * S * S).every((v) => v === 0)).toBe(true);
  });

  it('goes only with the two-plane region', () => {
    expect(() => editRegion([circle], ['Remove the red circle'], S, 1, { channels: 1, hint: PALETTE })).toThrow(/two-plane/);
  });
});

describe('editRegion: the class hint', () => {
  const circle = det('circle', 'red', 0.25, 0.5);
  const square = det('square', 'blue', 0.75, 0.5);
  const layout = { channels: 2 as const, hint: PALETTE, classes: SHAPES };
  const plane = (region: Float32Array, k: number): Float32Array => region.subarray(k * S * S, (k + 1) * S * S);

  it('marks each draw box on the plane of the class of its object, and nowhere else', () => {
    const region = editRegion([circle, square], ['Replace the red circle with a green star'], S, 1, layout);
    expect(region.length).toBe(11 * S * S);
    expect(region.subarray(0, 5 * S * S)).toEqual(editRegion([circle, square], ['Replace the red circle with a green star'], S, 1, { channels: 2, hint: PALETTE }));
    const draw = plane(region, 1);
    expect(draw.some((v) => v > 0)).toBe(true);
    SHAPES.forEach((shape, k) => expect(plane(region, 5 + k)).toEqual(shape === 'star' ? draw : new Float32Array(S * S)));
  });

  it('gives an Add that names no colour its class though no colour', () => {
    const region = editRegion([square], ['Add a cross to the left of the blue square'], S, 7, layout);
    expect(region.subarray(2 * S * S, 5 * S * S).every((v) => v === 0)).toBe(true);
    expect(plane(region, 5 + SHAPES.indexOf('cross'))).toEqual(plane(region, 1));
    expect(plane(region, 1).some((v) => v > 0)).toBe(true);
  });

  it('follows the order the model was trained in, and goes only with the colour hint', () => {
    const reversed = [...SHAPES].reverse();
    const region = editRegion([circle, square], ['Replace the red circle with a green star'], S, 1, { ...layout, classes: reversed });
    expect(plane(region, 5 + reversed.indexOf('star'))).toEqual(plane(region, 1));
    expect(() => editRegion([circle], ['Remove the red circle'], S, 1, { channels: 2, classes: SHAPES })).toThrow(/colour hint/);
  });
});

describe('editRegion: an object the reflection reads another way than the perception', () => {
  const circle = det('circle', 'purple', 0.25, 0.5);
  const square = det('square', 'blue', 0.75, 0.5);
  const erase = (m: Float32Array): Float32Array => m.subarray(0, S * S);
  const draw = (m: Float32Array): Float32Array => m.subarray(S * S);

  it('the only object of the named colour stands for it; it is redrawn in place when the edit would leave it as read', () => {
    // the reflection says purple diamond, the perception reads a purple circle: redraw that circle
    const same = editRegion([circle, square], ['Replace the purple diamond with a purple circle'], S, 1, { channels: 2 });
    expect(bounds(erase(same))).toEqual([3, 11, 12, 20]);
    expect(bounds(draw(same))).toEqual([3, 11, 12, 20]);
    expect(bounds(editRegion([circle, square], ['Remove the purple diamond'], S, 1, { channels: 2 }))).toEqual([3, 11, 12, 20]);
    // else the only object of the named class (a colour read another way)
    expect(bounds(erase(editRegion([circle, square], ['Replace the red square with a green square'], S, 1, { channels: 2 })))).toEqual([19, 11, 28, 20]);
  });

  it('an anchor read another way places the new object beside the one that stands for it', () => {
    const m = editRegion([circle], ['Add a blue star to the right of the purple diamond'], S, 5, { channels: 2 });
    const b = bounds(draw(m))!;
    expect(bounds(erase(m))).toBeNull();
    expect(b[0]).toBeGreaterThan(12);
  });

  it('several candidates, or a reference without colour: nothing is guessed', () => {
    const other = det('star', 'purple', 0.5, 0.2);
    expect(bounds(editRegion([circle, other, square], ['Remove the purple diamond'], S, 1, { channels: 2 }))).toBeNull();
    expect(bounds(editRegion([circle, square], ['Remove one diamond'], S, 1, { channels: 2 }))).toBeNull();
  });
});

describe('silhouette: what a silhouette-trained corrector reads of an object changed in place', () => {
  const P = S * S;
  const px = (v: number): number => v / 127.5 - 1;
  /** A gray image with a red 6×6 block at (5..10, 13..18) and a blue one at (21..26, 13..18). */
  function image(): Float32Array {
    const t = new Float32Array(3 * P).fill(px(128));
    const paint = (x0: number, rgb: [number, number, number]): void => {
      for (let y = 13; y <= 18; y++) for (let x = x0; x <= x0 + 5; x++) rgb.forEach((v, c) => (t[c * P + y * S + x] = px(v)));
    };
    paint(5, [220, 30, 30]);
    paint(21, [30, 70, 230]);
    return t;
  }
  const circle = det('circle', 'red', 0.25, 0.5);
  const square = det('square', 'blue', 0.75, 0.5);

  it('a recolour: the object’s pixels in its box become the flat gray; the background in the box and the other object stay', () => {
    const t = image();
    const before = t.slice();
    silhouette(t, editRegion([circle, square], ['Replace the red circle with a green circle'], S, 1, { channels: 2 }), S, 64);
    for (let y = 13; y <= 18; y++) for (let x = 5; x <= 10; x++) for (let c = 0; c < 3; c++) expect(t[c * P + y * S + x]).toBeCloseTo(px(64), 6);
    const changed = [...t].flatMap((v, k) => (v !== before[k] ? [k % P] : []));
    expect(new Set(changed).size).toBe(36);
    expect(t[21 + 15 * S]).toBe(before[21 + 15 * S]); // the blue block, red channel
  });

  it('a removal or a move (erase only) and an add (draw only) leave the image as it was', () => {
    for (const items of [['Remove the red circle'], ['Move the red circle below the blue square'], ['Add a green star']]) {
      const t = image();
      silhouette(t, editRegion([circle, square], items, S, 3, { channels: 2 }), S, 64);
      expect(t).toEqual(image());
    }
  });
});
