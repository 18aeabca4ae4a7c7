/**
 * The ShapeWorld evaluator: GenEval's judgement made from PNG bytes alone. It segments the image by colour (each
 * pixel is explained as a blend of the background with one palette colour, which tolerates anti-aliasing), finds
 * connected components, classifies each component's shape by fitting every class's outline to it (position and
 * scale by moments, then a local search maximising soft IoU; pixels covered by other colours count as unknown, so
 * slight overlaps do not hurt), and applies GenEval's rules (rules.ts) to the detections.
 * It knows the world's palette and shape outlines, never the scene of the image it judges.
 */
import sharp from 'sharp';
import { UserError, errorMessage } from '../core/errors.js';
import { judge, validateSpec, type Detection, type PromptSpec } from './rules.js';
import {
  BACKGROUND,
  COLORS,
  PALETTE,
  SHAPES,
  unitArea,
  unitBox,
  unitCentroid,
  unitSignedDistance,
  type Color,
  type Shape,
} from './shapes.js';

export interface Judgement {
  correct: boolean;
  reason: string;
  detections: Detection[];
  /** satisfied clauses / all clauses (include + exclude) */
  satisfied: number;
  clauses: number;
}

/** Pixels darker/lighter than this (Euclidean RGB distance from the background) are background. */
const BG_TOLERANCE = 14;
/** Largest distance from a pixel to the background–colour blend line for the pixel to count as that colour. */
const BLEND_TOLERANCE = 20;
/** A pixel belongs to an object when at least this much of it is covered (blend weight). */
const CORE_ALPHA = 0.5;
/** Components smaller than this fraction of the image (in covered area) are edge debris, not objects. */
const MIN_AREA_FRACTION = 0.0022;

interface Decoded {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Larger images are box-filtered down to at most this many pixels per side before detection. */
const WORK_SIZE = 64;

async function decode(png: Uint8Array, label: string): Promise<Decoded> {
  try {
    let pipeline = sharp(png, { failOn: 'error' });
    const meta = await pipeline.metadata();
    pipeline = pipeline.flatten({ background: { r: BACKGROUND[0], g: BACKGROUND[1], b: BACKGROUND[2] } });
    const side = Math.max(meta.width ?? 0, meta.height ?? 0);
    if (side > WORK_SIZE) {
      const f = WORK_SIZE / side;
      pipeline = pipeline.resize(Math.max(1, Math.round((meta.width ?? 0) * f)), Math.max(1, Math.round((meta.height ?? 0) * f)), {
        kernel: 'linear',
        fit: 'fill',
      });
    }
    const { data, info } = await pipeline
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`unexpected ${info.channels} channels`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (err) {
    throw new UserError(`cannot read image ${label}: ${errorMessage(err).split('\n')[0]}`);
  }
}

const PAL = COLORS.map((c) => {
  const d = [PALETTE[c][0] - BACKGROUND[0], PALETTE[c][1] - BACKGROUND[1], PALETTE[c][2] - BACKGROUND[2]] as const;
  return { d, n2: d[0] * d[0] + d[1] * d[1] + d[2] * d[2] };
});

interface PixelMap {
  /** palette index per pixel; -1 background, -2 a blend we cannot explain (e.g. two colours meeting) */
  color: Int8Array;
  /** blend weight of that colour, 0..1 */
  alpha: Float32Array;
}

function classifyPixels(img: Decoded): PixelMap {
  const n = img.width * img.height;
  const color = new Int8Array(n).fill(-1);
  const alpha = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const vx = (img.data[3 * i] as number) - BACKGROUND[0];
    const vy = (img.data[3 * i + 1] as number) - BACKGROUND[1];
    const vz = (img.data[3 * i + 2] as number) - BACKGROUND[2];
    if (vx * vx + vy * vy + vz * vz < BG_TOLERANCE * BG_TOLERANCE) continue;
    let best = -2;
    let bestRes = BLEND_TOLERANCE * BLEND_TOLERANCE;
    let bestA = 0;
    for (let k = 0; k < PAL.length; k++) {
      const { d, n2 } = PAL[k] as (typeof PAL)[number];
      let a = (vx * d[0] + vy * d[1] + vz * d[2]) / n2;
      if (a <= 0.05) continue;
      if (a > 1) a = 1;
      const rx = vx - a * d[0];
      const ry = vy - a * d[1];
      const rz = vz - a * d[2];
      const res = rx * rx + ry * ry + rz * rz;
      if (res < bestRes) {
        bestRes = res;
        best = k;
        bestA = a;
      }
    }
    color[i] = best;
    alpha[i] = best >= 0 ? bestA : 0;
  }
  return { color, alpha };
}

interface Component {
  color: number;
  pixels: number[];
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

function components(img: Decoded, px: PixelMap): { comps: Component[]; label: Int32Array } {
  const { width: w, height: h } = img;
  const label = new Int32Array(w * h).fill(-1);
  const comps: Component[] = [];
  const stack: number[] = [];
  for (let start = 0; start < w * h; start++) {
    if (label[start] !== -1 || (px.color[start] as number) < 0 || (px.alpha[start] as number) < CORE_ALPHA) continue;
    const c = px.color[start] as number;
    const comp: Component = { color: c, pixels: [], x1: w, y1: h, x2: -1, y2: -1 };
    const id = comps.length;
    label[start] = id;
    stack.push(start);
    while (stack.length) {
      const i = stack.pop() as number;
      comp.pixels.push(i);
      const x = i % w;
      const y = (i - x) / w;
      if (x < comp.x1) comp.x1 = x;
      if (x > comp.x2) comp.x2 = x;
      if (y < comp.y1) comp.y1 = y;
      if (y > comp.y2) comp.y2 = y;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const nx = x + dx;
          const ny = y + dy;
          if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
          const j = ny * w + nx;
          if (label[j] !== -1 || px.color[j] !== c || (px.alpha[j] as number) < CORE_ALPHA) continue;
          label[j] = id;
          stack.push(j);
        }
      }
    }
    comps.push(comp);
  }
  // grow each component into its anti-aliased rim (same colour, partly covered)
  const rim: Array<[number, number]> = [];
  for (let i = 0; i < w * h; i++) {
    if (label[i] !== -1 || (px.color[i] as number) < 0) continue;
    const x = i % w;
    const y = (i - x) / w;
    let owner = -1;
    for (let dy = -1; dy <= 1 && owner < 0; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const nx = x + dx;
        const ny = y + dy;
        if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
        const l = label[ny * w + nx] as number;
        if (l >= 0 && comps[l]?.color === px.color[i]) {
          owner = l;
          break;
        }
      }
    }
    if (owner >= 0) rim.push([i, owner]);
  }
  for (const [i, owner] of rim) {
    label[i] = owner;
    const comp = comps[owner] as Component;
    comp.pixels.push(i);
    const x = i % w;
    const y = (i - x) / w;
    comp.x1 = Math.min(comp.x1, x);
    comp.x2 = Math.max(comp.x2, x);
    comp.y1 = Math.min(comp.y1, y);
    comp.y2 = Math.max(comp.y2, y);
  }
  return { comps, label };
}

interface Fit {
  shape: Shape;
  cx: number;
  cy: number;
  r: number;
  iou: number;
}

/** Soft IoU between the observed coverage and `shape` drawn at (cx, cy, r) (pixel units), over known pixels. */
function softIoU(
  shape: Shape,
  cx: number,
  cy: number,
  r: number,
  region: { x1: number; y1: number; x2: number; y2: number; w: number; obs: Float32Array; known: Uint8Array },
): number {
  let inter = 0;
  let union = 0;
  const rw = region.x2 - region.x1 + 1;
  for (let y = region.y1; y <= region.y2; y++) {
    const uy = (y + 0.5 - cy) / r;
    for (let x = region.x1; x <= region.x2; x++) {
      const k = (y - region.y1) * rw + (x - region.x1);
      if (!region.known[k]) continue;
      const sd = unitSignedDistance(shape, (x + 0.5 - cx) / r, uy) * r;
      const t = sd <= -0.5 ? 1 : sd >= 0.5 ? 0 : 0.5 - sd;
      const o = region.obs[k] as number;
      inter += t < o ? t : o;
      union += t > o ? t : o;
    }
  }
  return union > 0 ? inter / union : 0;
}

/**
 * The component's best outline: each class placed and scaled by moments, the three best refined by local search,
 * the best of those. `ious` holds each class's soft IoU (SHAPES order): refined for those three, as placed for the rest.
 */
function fitComponent(comp: Component, img: Decoded, px: PixelMap, label: Int32Array, id: number): { best: Fit; ious: number[] } {
  const w = img.width;
  const pad = 2;
  const region = {
    x1: Math.max(0, comp.x1 - pad),
    y1: Math.max(0, comp.y1 - pad),
    x2: Math.min(img.width - 1, comp.x2 + pad),
    y2: Math.min(img.height - 1, comp.y2 + pad),
    w,
    obs: new Float32Array(0),
    known: new Uint8Array(0),
  };
  const rw = region.x2 - region.x1 + 1;
  const rh = region.y2 - region.y1 + 1;
  region.obs = new Float32Array(rw * rh);
  region.known = new Uint8Array(rw * rh);
  let area = 0;
  let mx = 0;
  let my = 0;
  for (let y = region.y1; y <= region.y2; y++) {
    for (let x = region.x1; x <= region.x2; x++) {
      const i = y * w + x;
      const k = (y - region.y1) * rw + (x - region.x1);
      const l = label[i] as number;
      if (l === id) {
        const a = px.alpha[i] as number;
        region.obs[k] = a;
        region.known[k] = 1;
        area += a;
        mx += a * (x + 0.5);
        my += a * (y + 0.5);
      } else {
        // another object (or an unexplained blend) covers this pixel: we cannot tell whether ours is beneath
        const occluded = l >= 0 || (px.color[i] as number) === -2 || ((px.color[i] as number) >= 0 && px.color[i] !== comp.color);
        region.known[k] = occluded ? 0 : 1;
      }
    }
  }
  mx /= area;
  my /= area;
  const inits = SHAPES.map((shape) => {
    const r = Math.sqrt(area / unitArea(shape));
    const [ux, uy] = unitCentroid(shape);
    const cx = mx - ux * r;
    const cy = my - uy * r;
    return { shape, cx, cy, r, iou: softIoU(shape, cx, cy, r, region) };
  });
  const ranked = inits.slice().sort((a, b) => b.iou - a.iou);
  const refined = new Map<Fit, Fit>(ranked.slice(0, 3).map((init) => [init, refine(init, region)]));
  let best: Fit | null = null;
  for (const f of refined.values()) if (!best || f.iou > best.iou) best = f;
  return { best: best as Fit, ious: inits.map((init) => (refined.get(init) ?? init).iou) };
}

function refine(init: Fit, region: Parameters<typeof softIoU>[4]): Fit {
  let cur = { ...init };
  let step = 0.5;
  for (let level = 0; level < 3; level++, step /= 2) {
    for (let iter = 0; iter < 8; iter++) {
      let improved = false;
      const cands: Array<[number, number, number]> = [
        [cur.cx + step, cur.cy, cur.r],
        [cur.cx - step, cur.cy, cur.r],
        [cur.cx, cur.cy + step, cur.r],
        [cur.cx, cur.cy - step, cur.r],
        [cur.cx, cur.cy, cur.r * (1 + 0.12 * step)],
        [cur.cx, cur.cy, cur.r / (1 + 0.12 * step)],
      ];
      for (const [cx, cy, r] of cands) {
        const iou = softIoU(cur.shape, cx, cy, r, region);
        if (iou > cur.iou + 1e-6) {
          cur = { shape: cur.shape, cx, cy, r, iou };
          improved = true;
        }
      }
      if (!improved) break;
    }
  }
  return cur;
}

/** One detected object and the pixels it was detected from. */
export interface SegmentedObject {
  detection: Detection;
  /** pixel indices (y · width + x) of its component, anti-aliased rim included */
  pixels: number[];
  /** each class's outline fitted to it, its soft IoU (SHAPES order): how close the call between classes was */
  fits: number[];
}

/** The decoded image, what each pixel was read as, and the detected objects with their pixels. */
export interface Segmentation {
  width: number;
  height: number;
  /** RGB bytes, row-major */
  data: Uint8Array;
  /** component per pixel (an index into `objects`, or -1: background, an unexplained blend, or debris) */
  owner: Int32Array;
  objects: SegmentedObject[];
}

/** Segment a PNG into objects: each detection with its pixels (what pixel-level edits of an image work on). */
export async function segmentObjects(png: Uint8Array, label = 'image'): Promise<Segmentation> {
  const img = await decode(png, label);
  const px = classifyPixels(img);
  const { comps, label: labels } = components(img, px);
  const minArea = MIN_AREA_FRACTION * img.width * img.height;
  const owner = new Int32Array(img.width * img.height).fill(-1);
  const objects: SegmentedObject[] = [];
  comps.forEach((comp, id) => {
    let area = 0;
    for (const i of comp.pixels) area += px.alpha[i] as number;
    if (area < minArea) return;
    const { best: fit, ious } = fitComponent(comp, img, px, labels, id);
    const [bx1, by1, bx2, by2] = unitBox(fit.shape);
    for (const i of comp.pixels) owner[i] = objects.length;
    objects.push({
      detection: {
        shape: fit.shape,
        color: COLORS[comp.color] as Color,
        cx: fit.cx / img.width,
        cy: fit.cy / img.height,
        r: fit.r / img.width,
        box: [
          (fit.cx + bx1 * fit.r) / img.width,
          (fit.cy + by1 * fit.r) / img.height,
          (fit.cx + bx2 * fit.r) / img.width,
          (fit.cy + by2 * fit.r) / img.height,
        ],
        score: area / (img.width * img.height),
      },
      pixels: comp.pixels,
      fits: ious,
    });
  });
  return { width: img.width, height: img.height, data: img.data, owner, objects };
}

/** Detect the objects in a PNG: shape, colour, centre, scale and box, normalised to [0, 1]. */
export async function detectObjects(png: Uint8Array, label = 'image'): Promise<Detection[]> {
  return (await segmentObjects(png, label)).objects.map((o) => o.detection);
}

/**
 * Judge a PNG against a GenEval record (`{include, exclude?}`; `tag` and `prompt` are not needed). Throws a
 * UserError for an unreadable image or a record naming a class or colour ShapeWorld does not have.
 */
export async function evaluateImage(png: Uint8Array, record: PromptSpec, label = 'image'): Promise<Judgement> {
  validateSpec(record);
  const detections = await detectObjects(png, label);
  const v = judge(detections, record);
  return { correct: v.correct, reason: v.reason, detections, satisfied: v.satisfied, clauses: v.clauses };
}

export { scoreByCategory } from './rules.js';
