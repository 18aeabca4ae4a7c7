/**
 * What the embedded reflector and refiner see in an image: a learned 8×8 object map (models/reflector.onnx, the
 * verifier's image side trained for detection by training/train_perception.py) read as a list of objects with class,
 * colour, centre and size, each object's class from the shape reader beside it (training/train_shape_reader.py).
 * It is a learned model of pixels; it never calls the evaluator.
 */
import type { Image } from '../../core/types.js';
import { UserError } from '../../core/errors.js';
import type { Detection } from '../../shapeworld/rules.js';
import { COLORS, SHAPES } from '../../shapeworld/shapes.js';
import type { RoleInfo } from '../../core/roles.js';
import { EMBEDDED_CONCURRENCY, MicroBatcher, SCORE_BATCH_WINDOW_MS } from './batcher.js';
import { pngToTensor } from './image.js';
import { loadModel, ort, type ModelSession } from './onnx.js';
import { encodePrompt } from './spec.js';

export interface PerceptionMeta {
  size: number;
  grid: number;
  classes: string[];
  colors: string[];
  /** side of the shape reader's map, in a model that has one (output `shapes`) */
  shapeGrid?: number;
}

/**
 * One image as the model sees it: the object map (channels × grid × grid: centre, class logits, colour logits,
 * offset x/y, size w/h) and, from a model with a shape reader, its map of class logits and a last "no object"
 * logit ((classes + 1) × shapeGrid × shapeGrid).
 */
export interface PerceptionMaps {
  objects: Float32Array;
  shapes?: Float32Array;
}

/** How an object map is read as objects. */
export interface DecodeOptions {
  /** an object is read where P(centre) ≥ this */
  threshold: number;
  /** readings closer than `merge` (of the image side) are one object: of one class and colour only, or of any */
  mergeAnyClass: boolean;
  /** with a shape reader: a reading is dropped where its P(no object) ≥ this (above 1: never) */
  noObject: number;
  /** with a shape reader: whose class a reading takes */
  classFrom: 'reader' | 'map';
  /** with a shape reader: the side of the square of its cells read around a centre, logits averaged (1: the cell only) */
  readerWindow: number;
}

/** An object is read where P(centre) ≥ this. */
export const CENTRE_THRESHOLD = 0.5;
/** A reading is dropped where the shape reader's P(no object) at its centre is at least this. */
export const NO_OBJECT = 0.5;
/**
 * The shape reader is read over this many cells square around a centre, logits averaged: it was trained on the 3×3
 * cells around each centre, and the object map's centre is off by a pixel or two (on training prompts, precision /
 * recall / silent on passing 0.912 / 0.875 / 0.980 → 0.927 / 0.887 / 0.980, `reflector-agreement --set train
 * --reader-window 1,3`).
 */
export const READER_WINDOW = 3;
/**
 * Two readings closer than this (of the image side) are one object seen in two cells. ShapeWorld never draws two
 * objects that close: scale ≥ 0.095 and a 0.06 gap put their centres ≥ 0.2 apart.
 */
const SAME_OBJECT = 0.15;

export const DEFAULT_DECODE: DecodeOptions = { threshold: CENTRE_THRESHOLD, mergeAnyClass: false, noObject: NO_OBJECT, classFrom: 'reader', readerWindow: READER_WINDOW };

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

export class Perception {
  private readonly batcher: MicroBatcher<Float32Array, Detection[]>;
  /** the reflector and the refiner read the same image object in one round: one forward pass serves both */
  private readonly seen = new WeakMap<Image, Promise<Detection[]>>();

  private constructor(
    private readonly session: ModelSession,
    readonly meta: PerceptionMeta,
    maxBatch: number,
    private readonly decode: DecodeOptions,
    private readonly flip: boolean,
  ) {
    this.batcher = new MicroBatcher(maxBatch, (reqs) => this.run(reqs), SCORE_BATCH_WINDOW_MS);
  }

  /**
   * `flip` (default true): read each image and its mirror image and average the two maps — every ShapeWorld shape is
   * left-right symmetric, so the mirror is a second look at the same objects (on training prompts, precision / recall /
   * silent on passing 0.868 / 0.817 / 0.982 → 0.876 / 0.825 / 0.980, `reflector-agreement --set train [--no-flip]`).
   */
  static async load(dir: string, opts: { threads?: number; maxBatch?: number; flip?: boolean } = {}): Promise<Perception> {
    const { session, meta } = await loadModel<PerceptionMeta>(dir, 'reflector', opts.threads);
    if (meta.grid !== 8 || meta.classes?.join() !== SHAPES.join() || meta.colors?.join() !== COLORS.join()) {
      throw new UserError(`${dir}/reflector.json: this version reads an 8×8 object map over ShapeWorld's classes and colours`);
    }
    return new Perception(session, meta, opts.maxBatch ?? 64, DEFAULT_DECODE, opts.flip ?? true);
  }

  /** The objects in one image, most confident first. */
  detect(image: Image): Promise<Detection[]> {
    let found = this.seen.get(image);
    if (!found) {
      found = this.read(image);
      this.seen.set(image, found);
      found.catch(() => this.seen.delete(image)); // a failed read is not remembered
    }
    return found;
  }

  private async read(image: Image): Promise<Detection[]> {
    const pixels = new Float32Array(3 * this.meta.size * this.meta.size);
    await pngToTensor(image, this.meta.size, pixels, 0);
    return this.batcher.submit(pixels);
  }

  private async run(reqs: Float32Array[]): Promise<Detection[][]> {
    return (await this.objectMaps(reqs)).map((m) => decodeObjectMap(m, this.meta.grid, this.decode));
  }

  /** The raw maps of images given as CHW pixels in [−1, 1]. */
  async objectMaps(reqs: Float32Array[]): Promise<PerceptionMaps[]> {
    const { size, grid } = this.meta;
    const per = 3 * size * size;
    const inputs = this.flip ? [...reqs, ...reqs.map((r) => mirrorImage(r, size))] : reqs;
    const images = new Float32Array(inputs.length * per);
    inputs.forEach((r, i) => images.set(r, i * per));
    const out = await this.session.run({ image: new ort.Tensor('float32', images, [inputs.length, 3, size, size]) });
    const objects = perImage(out.objects!);
    const shapes = out.shapes ? perImage(out.shapes) : undefined;
    return reqs.map((_, b) => {
      if (!this.flip) return { objects: objects(b), ...(shapes && { shapes: shapes(b) }) };
      const m = reqs.length + b;
      return {
        objects: meanWithMirror(objects(b), objects(m), grid),
        ...(shapes && { shapes: meanLogitsWithMirror(shapes(b), shapes(m)) }),
      };
    });
  }
}

/** A batched output's slice for image b. */
function perImage(t: ort.Tensor): (b: number) => Float32Array {
  const data = t.data as Float32Array;
  const n = (t.dims as readonly number[]).slice(1).reduce((a, d) => a * d, 1);
  return (b) => data.slice(b * n, (b + 1) * n);
}

/** The shape reader's maps ((classes + 1) × side × side) of an image and its mirror image, averaged in the image's frame. */
function meanLogitsWithMirror(m: Float32Array, mirrored: Float32Array): Float32Array {
  const side = shapeSide(m);
  const out = new Float32Array(m.length);
  for (let i = 0; i < m.length; i++) {
    const x = i % side;
    out[i] = (m[i]! + mirrored[i - x + side - 1 - x]!) / 2;
  }
  return out;
}

/** CHW pixels mirrored left to right. */
function mirrorImage(chw: Float32Array, size: number): Float32Array {
  const out = new Float32Array(chw.length);
  for (let row = 0; row < chw.length / size; row++) {
    for (let x = 0; x < size; x++) out[row * size + x] = chw[row * size + size - 1 - x]!;
  }
  return out;
}

const logit = (p: number): number => Math.log(Math.max(p, 1e-6) / Math.max(1 - p, 1e-6));

/**
 * The mean of an object map and the map of the mirrored image, brought back to the image's frame: logits averaged
 * cell by cell (the mirror's column reversed), the in-cell x offset reflected, offsets and sizes averaged as fractions.
 */
function meanWithMirror(m: Float32Array, mirrored: Float32Array, grid: number): Float32Array {
  const cells = grid * grid;
  const channels = m.length / cells;
  const offX = 1 + SHAPES.length + COLORS.length;
  const out = new Float32Array(m.length);
  for (let ch = 0; ch < channels; ch++) {
    for (let cell = 0; cell < cells; cell++) {
      const gx = cell % grid;
      const a = m[ch * cells + cell]!;
      const b = mirrored[ch * cells + cell - gx + (grid - 1 - gx)]!;
      if (ch < offX) out[ch * cells + cell] = (a + b) / 2;
      else if (ch === offX) out[ch * cells + cell] = logit((sigmoid(a) + 1 - sigmoid(b)) / 2);
      else out[ch * cells + cell] = logit((sigmoid(a) + sigmoid(b)) / 2);
    }
  }
  return out;
}

/** A role that reads images with the perception model (reflector, refiner): it takes the prompts the model's parse reads. */
export abstract class PerceptionRole implements RoleInfo {
  readonly name = 'embedded';

  constructor(
    protected readonly perception: Perception,
    readonly concurrency = EMBEDDED_CONCURRENCY,
  ) {}

  checkPrompt(prompt: string): void {
    encodePrompt(prompt);
  }
}

/**
 * One image's maps as objects: an object where the map's P(centre) clears the threshold, its colour, centre and size
 * from the map; its class from the shape reader at that centre when the model has one (and no object where the
 * reader is sure there is none), else from the map.
 */
export function decodeObjectMap(maps: PerceptionMaps, grid: number, opts: DecodeOptions = DEFAULT_DECODE): Detection[] {
  const m = maps.objects;
  const cells = grid * grid;
  const at = (ch: number, cell: number): number => m[ch * cells + cell]!;
  const K = SHAPES.length;
  const C = COLORS.length;
  const argmax = (from: number, n: number, cell: number): number => {
    let best = 0;
    for (let k = 1; k < n; k++) if (at(from + k, cell) > at(from + best, cell)) best = k;
    return best;
  };
  const found: Detection[] = [];
  for (let cell = 0; cell < cells; cell++) {
    const p = sigmoid(at(0, cell));
    if (p < opts.threshold) continue;
    const gx = cell % grid;
    const gy = Math.floor(cell / grid);
    const cx = (gx + sigmoid(at(1 + K + C, cell))) / grid;
    const cy = (gy + sigmoid(at(2 + K + C, cell))) / grid;
    const w = sigmoid(at(3 + K + C, cell));
    const h = sigmoid(at(4 + K + C, cell));
    let shape = argmax(1, K, cell);
    if (maps.shapes) {
      const read = readShape(maps.shapes, cx, cy, opts.readerWindow);
      if (read.none >= opts.noObject) continue;
      if (opts.classFrom === 'reader') shape = read.shape;
    }
    found.push({
      shape: SHAPES[shape]!,
      color: COLORS[argmax(1 + K, C, cell)]!,
      cx,
      cy,
      r: Math.max(w, h) / 2,
      box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2],
      score: p,
    });
  }
  found.sort((a, b) => b.score - a.score);
  const kept: Detection[] = [];
  for (const d of found) {
    const same = (k: Detection): boolean => opts.mergeAnyClass || (k.shape === d.shape && k.color === d.color);
    if (kept.some((k) => same(k) && Math.hypot(k.cx - d.cx, k.cy - d.cy) < SAME_OBJECT)) continue;
    kept.push(d);
  }
  return kept;
}

/** The shape reader at (cx, cy), its logits averaged over the `window` × `window` cells around it: its class, and its P(no object there). */
function readShape(shapes: Float32Array, cx: number, cy: number, window: number): { shape: number; none: number } {
  const K = SHAPES.length;
  const side = shapeSide(shapes);
  const col = Math.min(side - 1, Math.floor(cx * side));
  const row = Math.min(side - 1, Math.floor(cy * side));
  const reach = Math.floor(window / 2);
  const logits = new Array<number>(K + 1).fill(0);
  let n = 0;
  for (let y = Math.max(0, row - reach); y <= Math.min(side - 1, row + reach); y++) {
    for (let x = Math.max(0, col - reach); x <= Math.min(side - 1, col + reach); x++) {
      for (let k = 0; k <= K; k++) logits[k]! += shapes[k * side * side + y * side + x]!;
      n++;
    }
  }
  for (let k = 0; k <= K; k++) logits[k]! /= n;
  const top = Math.max(...logits);
  const sum = logits.reduce((a, z) => a + Math.exp(z - top), 0);
  let best = 0;
  for (let k = 1; k < K; k++) if (logits[k]! > logits[best]!) best = k;
  return { shape: best, none: Math.exp(logits[K]! - top) / sum };
}

/** The side of a shape reader's square map: its length is (classes + 1) × side². */
const shapeSide = (shapes: Float32Array): number => Math.round(Math.sqrt(shapes.length / (SHAPES.length + 1)));
