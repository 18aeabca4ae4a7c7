/**
 * ShapeWorld's vocabulary and geometry: six shape classes, GenEval's ten colours with fixed RGB values, and the
 * background. Shapes are defined in a unit frame ([-1, 1]², y pointing down) and scaled by an object's `r`.
 * The renderer draws these outlines; the evaluator fits the same outlines to pixels (it knows the shapes of the
 * world, never the scene of the image it judges).
 */

export const SHAPES = ['circle', 'square', 'triangle', 'star', 'diamond', 'cross'] as const;
export type Shape = (typeof SHAPES)[number];

/** GenEval's colour list, in GenEval's order. */
export const COLORS = ['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'pink', 'brown', 'black', 'white'] as const;
export type Color = (typeof COLORS)[number];

export type RGB = readonly [number, number, number];

/** Fixed sRGB values; chosen so that every colour, and its anti-aliased blend with the background, stays apart. */
export const PALETTE: Readonly<Record<Color, RGB>> = {
  red: [220, 30, 30],
  orange: [255, 140, 0],
  yellow: [250, 225, 20],
  green: [30, 160, 50],
  blue: [30, 70, 230],
  purple: [135, 40, 195],
  pink: [255, 125, 200],
  brown: [125, 70, 20],
  black: [15, 15, 15],
  white: [245, 245, 245],
};

/** Plain mid-gray background. */
export const BACKGROUND: RGB = [128, 128, 128];

export const PLURALS: Readonly<Record<Shape, string>> = {
  circle: 'circles',
  square: 'squares',
  triangle: 'triangles',
  star: 'stars',
  diamond: 'diamonds',
  cross: 'crosses',
};

export function isShape(word: string): word is Shape {
  return (SHAPES as readonly string[]).includes(word);
}
export function isColor(word: string): word is Color {
  return (COLORS as readonly string[]).includes(word);
}

export type Point = readonly [number, number];

const CIRCLE_RADIUS = 0.9;

function starPolygon(points: number, outer: number, inner: number, dy: number): Point[] {
  const out: Point[] = [];
  for (let i = 0; i < points * 2; i++) {
    const rad = i % 2 === 0 ? outer : inner;
    const a = -Math.PI / 2 + (i * Math.PI) / points;
    out.push([rad * Math.cos(a), rad * Math.sin(a) + dy]);
  }
  return out;
}

/** Polygon outlines in the unit frame (the circle is analytic). */
export const POLYGONS: Readonly<Record<Exclude<Shape, 'circle'>, readonly Point[]>> = {
  square: [
    [-0.8, -0.8],
    [0.8, -0.8],
    [0.8, 0.8],
    [-0.8, 0.8],
  ],
  triangle: [
    [0, -0.95],
    [0.98, 0.75],
    [-0.98, 0.75],
  ],
  star: starPolygon(5, 1.0, 0.42, 0.1),
  diamond: [
    [0, -1],
    [0.78, 0],
    [0, 1],
    [-0.78, 0],
  ],
  cross: [
    [-0.3, -0.92],
    [0.3, -0.92],
    [0.3, -0.3],
    [0.92, -0.3],
    [0.92, 0.3],
    [0.3, 0.3],
    [0.3, 0.92],
    [-0.3, 0.92],
    [-0.3, 0.3],
    [-0.92, 0.3],
    [-0.92, -0.3],
    [-0.3, -0.3],
  ],
};

/** Bounding box of a shape in the unit frame: [x1, y1, x2, y2]. */
export function unitBox(shape: Shape): [number, number, number, number] {
  if (shape === 'circle') return [-CIRCLE_RADIUS, -CIRCLE_RADIUS, CIRCLE_RADIUS, CIRCLE_RADIUS];
  const pts = POLYGONS[shape];
  let x1 = Infinity;
  let y1 = Infinity;
  let x2 = -Infinity;
  let y2 = -Infinity;
  for (const [x, y] of pts) {
    x1 = Math.min(x1, x);
    y1 = Math.min(y1, y);
    x2 = Math.max(x2, x);
    y2 = Math.max(y2, y);
  }
  return [x1, y1, x2, y2];
}

/** Area of a shape in the unit frame. */
export function unitArea(shape: Shape): number {
  if (shape === 'circle') return Math.PI * CIRCLE_RADIUS * CIRCLE_RADIUS;
  const pts = POLYGONS[shape];
  let a = 0;
  for (let i = 0; i < pts.length; i++) {
    const p = pts[i] as Point;
    const q = pts[(i + 1) % pts.length] as Point;
    a += p[0] * q[1] - q[0] * p[1];
  }
  return Math.abs(a) / 2;
}

/** Centroid of a shape in the unit frame. */
export function unitCentroid(shape: Shape): [number, number] {
  if (shape === 'circle') return [0, 0];
  const pts = POLYGONS[shape];
  let a = 0;
  let cx = 0;
  let cy = 0;
  for (let i = 0; i < pts.length; i++) {
    const p = pts[i] as Point;
    const q = pts[(i + 1) % pts.length] as Point;
    const cross = p[0] * q[1] - q[0] * p[1];
    a += cross;
    cx += (p[0] + q[0]) * cross;
    cy += (p[1] + q[1]) * cross;
  }
  return [cx / (3 * a), cy / (3 * a)];
}

/**
 * Signed distance (negative inside) from unit-frame point (x, y) to the outline of `shape`.
 */
export function unitSignedDistance(shape: Shape, x: number, y: number): number {
  if (shape === 'circle') return Math.hypot(x, y) - CIRCLE_RADIUS;
  const pts = POLYGONS[shape];
  let best = Infinity;
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i] as Point;
    const [xj, yj] = pts[j] as Point;
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    const ex = xi - xj;
    const ey = yi - yj;
    const t = Math.max(0, Math.min(1, ((x - xj) * ex + (y - yj) * ey) / (ex * ex + ey * ey)));
    const d = Math.hypot(x - xj - t * ex, y - yj - t * ey);
    if (d < best) best = d;
  }
  return inside ? -best : best;
}

/** SVG element for a shape at centre (cx, cy) with scale r, in the caller's units. */
export function shapeSvg(shape: Shape, cx: number, cy: number, r: number, fill: string): string {
  if (shape === 'circle') {
    return `<circle cx="${fmt(cx)}" cy="${fmt(cy)}" r="${fmt(CIRCLE_RADIUS * r)}" fill="${fill}"/>`;
  }
  const pts = POLYGONS[shape].map(([x, y]) => `${fmt(cx + x * r)},${fmt(cy + y * r)}`).join(' ');
  return `<polygon points="${pts}" fill="${fill}"/>`;
}

function fmt(v: number): string {
  return (Math.round(v * 1000) / 1000).toString();
}

export function rgbHex(rgb: RGB): string {
  return '#' + rgb.map((v) => v.toString(16).padStart(2, '0')).join('');
}
