/**
 * The verifier's main training set: image–prompt pairs. Each image (a generator sample or a render) is detected
 * once by the ShapeWorld evaluator and then judged against several training prompts: its own prompt plus prompts
 * about the classes it shows (the hard cases: right objects, wrong count, colour or place) and one unrelated prompt.
 * Every label is the evaluator's verdict, so one sampled image yields several exact labels.
 *
 * Besides the pair files the training side reads (images.u8, tokens.i32, labels.u8, records.jsonl, meta.json) it
 * writes `groups.i32` (source image id of each pair, so the validation split holds out whole images), `own.u8`
 * (1 where the prompt is the one the image was sampled for: the pairs the verifier meets at inference) and
 * `aux.u8`, a per-image 8×8 map of what the evaluator detected (class id and colour id per cell, 0 = background),
 * which training uses as an auxiliary dense target so the image encoder learns to see objects. For the module
 * verifier it also writes `spec.i32` (each pair's prompt as the verifier reads it: parsed and laid out by
 * `encodePrompt`) and `objects.f32` (per pair, the image's detections: up to OBJECT_SLOTS rows of class id, colour
 * id, centre x, centre y, width, height, normalised; class 0 = empty row), the dense target of its object map,
 * and `fits.f32` beside it (per pair, the same rows: the soft IoU of each class's outline fitted to the object, SHAPES
 * order — how close the evaluator's call between classes was; see `segmentObjects`).
 */
import { existsSync, readFileSync, openSync, closeSync, writeSync } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { UserError } from '../core/errors.js';
import { segmentObjects } from '../shapeworld/evaluate.js';
import { judge, rankDetections, type Detection, type PromptRecord, type PromptSpec } from '../shapeworld/rules.js';
import { MODEL_SIZE } from '../shapeworld/render.js';
import { trainPrompts } from '../shapeworld/prompts.js';
import { COLORS, SHAPES } from '../shapeworld/shapes.js';
import { mixSeed, Rng } from '../shapeworld/random.js';
import { encodePrompt, encodeSpec, SPEC_LAYOUT, SPEC_LENGTH } from '../backends/embedded/spec.js';
import { DatasetWriter, renderWithDefects, shapeWorldVocab } from './images.js';

export const AUX_GRID = 8;
export const OBJECT_SLOTS = 8;
const OBJECT_FIELDS = 6;

/** The detections of an image as OBJECT_SLOTS rows of (class id, colour id, cx, cy, w, h); most confident first. */
export function objectRows(dets: readonly Detection[]): Float32Array {
  const out = new Float32Array(OBJECT_SLOTS * OBJECT_FIELDS);
  rankDetections(dets)
    .slice(0, OBJECT_SLOTS)
    .forEach((d, i) => {
      out.set([SHAPES.indexOf(d.shape) + 1, COLORS.indexOf(d.color) + 1, d.cx, d.cy, d.box[2] - d.box[0], d.box[3] - d.box[1]], i * OBJECT_FIELDS);
    });
  return out;
}

/** Each class's fit to each object (SHAPES order), in `objectRows`' rows. */
export function fitRows(dets: readonly Detection[], fits: ReadonlyMap<Detection, readonly number[]>): Float32Array {
  const out = new Float32Array(OBJECT_SLOTS * SHAPES.length);
  rankDetections(dets)
    .slice(0, OBJECT_SLOTS)
    .forEach((d, i) => out.set(fits.get(d) ?? [], i * SHAPES.length));
  return out;
}

export interface PairsOptions {
  /** folders written by `dataset images --kind verifier` (their generator samples are used; renders are skipped) */
  sampleDirs: string[];
  /** rendered scenes (correct or with one defect) added as further source images */
  rendered: number;
  /** prompts judged per image, its own included */
  promptsPerImage: number;
  seed: number;
  onProgress?: (images: number, total: number) => void;
}

/** A generator sample comes as raw RGB pixels (how `dataset images` stores it), a render as PNG. */
type SourceImage = ({ raw: Uint8Array; png?: undefined } | { png: Uint8Array; raw?: undefined }) & {
  /** own prompt, when known */
  own?: { record: { tag: string; prompt: string }; spec?: PromptSpec; label?: 0 | 1 };
};

/** Class ids 1..6 (SHAPES order) and colour ids 1..10 (COLORS order) per cell of an 8×8 grid; 0 = nothing. */
export function auxGrid(dets: readonly Detection[]): Uint8Array {
  const g = AUX_GRID;
  const out = new Uint8Array(2 * g * g);
  const area = new Float64Array(g * g);
  for (const d of dets) {
    const a = (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]);
    const mark = (cx: number, cy: number) => {
      const i = cy * g + cx;
      if (out[i] !== 0 && area[i]! >= a) return;
      out[i] = SHAPES.indexOf(d.shape) + 1;
      out[g * g + i] = COLORS.indexOf(d.color) + 1;
      area[i] = a;
    };
    for (let cy = 0; cy < g; cy++) {
      for (let cx = 0; cx < g; cx++) {
        const x = (cx + 0.5) / g;
        const y = (cy + 0.5) / g;
        if (x >= d.box[0] && x <= d.box[2] && y >= d.box[1] && y <= d.box[3]) mark(cx, cy);
      }
    }
    // an object smaller than a cell still marks the cell of its centre
    mark(Math.min(g - 1, Math.floor(d.cx * g)), Math.min(g - 1, Math.floor(d.cy * g)));
  }
  return out;
}

function classSet(spec: PromptSpec): string {
  return [...new Set(spec.include.map((c) => c.class))].sort().join('|');
}

/** Generator samples of a `dataset images --kind verifier` folder (also one whose writing was stopped early). */
function readSamples(dir: string): SourceImage[] {
  const metaPath = path.join(dir, 'meta.json');
  const meta = existsSync(metaPath) ? (JSON.parse(readFileSync(metaPath, 'utf8')) as { generated?: number; size?: number }) : {};
  if ((meta.size ?? MODEL_SIZE) !== MODEL_SIZE) throw new UserError(`${dir}: images are ${meta.size} px, expected ${MODEL_SIZE}`);
  let records: Array<{ tag: string; prompt: string; label?: number }>;
  let images: Buffer;
  try {
    records = readFileSync(path.join(dir, 'records.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .flatMap((l) => {
        try {
          return [JSON.parse(l)];
        } catch {
          return []; // a torn last line of a stopped writer
        }
      });
    images = readFileSync(path.join(dir, 'images.u8'));
  } catch (e) {
    throw new UserError(`${dir}: not a verifier dataset folder (${(e as Error).message})`);
  }
  const px = MODEL_SIZE * MODEL_SIZE * 3;
  const n = Math.min(meta.generated ?? Infinity, records.length, Math.floor(images.length / px));
  const out: SourceImage[] = [];
  for (let i = 0; i < n; i++) {
    const r = records[i]!;
    out.push({ raw: images.subarray(i * px, (i + 1) * px), own: { record: { tag: r.tag, prompt: r.prompt }, label: r.label === 1 ? 1 : 0 } });
  }
  return out;
}

async function rawToPng(raw: Uint8Array): Promise<Uint8Array> {
  return sharp(Buffer.from(raw), { raw: { width: MODEL_SIZE, height: MODEL_SIZE, channels: 3 } }).png().toBuffer();
}

/** Source images detected at a time (in parallel, at most 8 at once), then written in order. */
const CHUNK = 256;

export async function writeVerifierPairs(dir: string, opts: PairsOptions): Promise<{ images: number; pairs: number; positives: number; ownPositives: number; own: number }> {
  if (opts.promptsPerImage < 1) throw new UserError('--prompts-per-image must be ≥ 1');
  const { sources, sampled, rendered } = await sourceImages(opts);
  const prompts = promptPool(opts.seed);
  const writer = new DatasetWriter(dir, shapeWorldVocab(), MODEL_SIZE, true);
  const files = new PairFiles(dir, writer);
  const rng = new Rng(mixSeed(opts.seed, 'pairs-pick'));
  const limit = pLimit(8);
  try {
    for (let start = 0; start < sources.length; start += CHUNK) {
      const chunk = sources.slice(start, start + CHUNK);
      const prepared = await Promise.all(chunk.map((s, j) => limit(() => prepareImage(s, `image ${start + j}`))));
      for (let j = 0; j < chunk.length; j++) {
        const { raw, dets, fits } = prepared[j]!;
        files.addImage(start + j, raw, dets, fits, pairedPrompts(chunk[j]!, dets, prompts, rng, opts.promptsPerImage));
      }
      opts.onProgress?.(Math.min(start + CHUNK, sources.length), sources.length);
    }
  } finally {
    files.close();
  }
  writer.close({
    kind: 'verifier-pairs',
    seed: opts.seed,
    images: sources.length,
    sampledImages: sampled,
    renderedImages: rendered,
    promptsPerImage: opts.promptsPerImage,
    positives: files.positives,
    own: files.own,
    ownPositives: files.ownPositives,
    aux: { grid: AUX_GRID, classes: ['<none>', ...SHAPES], colors: ['<none>', ...COLORS] },
    spec: { ...SPEC_LAYOUT, length: SPEC_LENGTH, mismatches: files.specMismatches },
    objects: { slots: OBJECT_SLOTS, fields: ['class', 'color', 'cx', 'cy', 'w', 'h'], truncated: files.truncatedObjects },
    fits: { slots: OBJECT_SLOTS, classes: [...SHAPES] },
    sources: opts.sampleDirs,
  });
  return { images: sources.length, pairs: files.pairs, positives: files.positives, own: files.own, ownPositives: files.ownPositives };
}

/** The generator samples of the sample folders, then renders of training prompts, half correct and half with one defect. */
async function sourceImages(opts: PairsOptions): Promise<{ sources: SourceImage[]; sampled: number; rendered: number }> {
  const sources: SourceImage[] = opts.sampleDirs.flatMap(readSamples);
  const sampled = sources.length;
  const renders = await renderWithDefects(
    trainPrompts({ count: opts.rendered, seed: mixSeed(opts.seed, 'pairs-rendered') }),
    mixSeed(opts.seed, 'pairs-defects'),
    (i) => mixSeed(opts.seed, 'pairs-scene', i),
  );
  // their own label is the evaluator's verdict, like every other pair's
  sources.push(...renders.map(({ record, png }) => ({ png, own: { record, spec: record } })));
  return { sources, sampled, rendered: renders.length };
}

interface PromptPool {
  all: PromptRecord[];
  /** (class set → category → prompts), so the related prompts of an image spread over the categories */
  byClasses: Map<string, Map<string, PromptRecord[]>>;
}

/** A large pool of training prompts, indexed by the set of classes they name. */
function promptPool(seed: number): PromptPool {
  const all = trainPrompts({ count: 60_000, seed: mixSeed(seed, 'pairs-pool') });
  const byClasses = new Map<string, Map<string, PromptRecord[]>>();
  for (const r of all) {
    const k = classSet(r);
    let tags = byClasses.get(k);
    if (!tags) byClasses.set(k, (tags = new Map()));
    let list = tags.get(r.tag);
    if (!list) tags.set(r.tag, (list = []));
    list.push(r);
  }
  return { all, byClasses };
}

/** An image's pixels at the model's size, what the evaluator detects in it, and each class's fit to each object. */
async function prepareImage(s: SourceImage, name: string): Promise<{ raw: Uint8Array; dets: Detection[]; fits: Map<Detection, number[]> }> {
  const png = s.png ?? (await rawToPng(s.raw));
  const raw = s.raw ?? (await sharp(Buffer.from(png)).removeAlpha().resize(MODEL_SIZE, MODEL_SIZE).raw().toBuffer());
  const { objects } = await segmentObjects(png, name);
  return { raw, dets: objects.map((o) => o.detection), fits: new Map(objects.map((o) => [o.detection, o.fits])) };
}

/** One prompt judged against an image; `spec`: what the record asks for, when the record carries it (renders and pool prompts; not samples). */
interface PairItem {
  record: { tag: string; prompt: string };
  spec?: PromptSpec;
  label: 0 | 1;
  own: boolean;
}

/**
 * The prompts an image is judged against: its own first (when known), then prompts about the classes it shows,
 * one unrelated prompt last (or more, when it shows nothing), each labelled by the evaluator's verdict.
 */
function pairedPrompts(src: SourceImage, dets: readonly Detection[], prompts: PromptPool, rng: Rng, promptsPerImage: number): PairItem[] {
  const present = [...new Set(dets.map((d) => d.shape))].sort();
  // candidate class sets: every non-empty subset of up to two present classes
  const keys: string[] = [];
  for (let a = 0; a < present.length; a++) {
    keys.push(present[a]!);
    for (let b = a + 1; b < present.length; b++) keys.push(`${present[a]}|${present[b]}`);
  }
  const items: PairItem[] = [];
  if (src.own) {
    const label = src.own.spec ? (judge(dets, src.own.spec).correct ? 1 : 0) : (src.own.label ?? 0);
    items.push({ record: src.own.record, ...(src.own.spec ? { spec: src.own.spec } : {}), label, own: true });
  }
  while (items.length < promptsPerImage) {
    const related = keys.length > 0 && items.length < promptsPerImage - 1;
    const tags = related ? prompts.byClasses.get(rng.pick(keys)) : undefined;
    const list = tags ? tags.get(rng.pick([...tags.keys()])) : undefined;
    const rec = list && list.length > 0 ? rng.pick(list) : rng.pick(prompts.all);
    items.push({ record: rec, spec: rec, label: judge(dets, rec).correct ? 1 : 0, own: false });
  }
  return items;
}

/** The pair files besides the dataset writer's (groups, own, aux, spec, objects, fits), and the counts meta.json reports. */
class PairFiles {
  pairs = 0;
  positives = 0;
  own = 0;
  ownPositives = 0;
  /** the verifier reads the parse of the prompt text; pairs where it differs from the record's own spec */
  specMismatches = 0;
  /** images with more detections than OBJECT_SLOTS */
  truncatedObjects = 0;
  private readonly groups: number;
  private readonly ownFile: number;
  private readonly aux: number;
  private readonly specs: number;
  private readonly objects: number;
  private readonly fits: number;

  constructor(
    dir: string,
    private readonly writer: DatasetWriter,
  ) {
    this.groups = openSync(path.join(dir, 'groups.i32'), 'w');
    this.ownFile = openSync(path.join(dir, 'own.u8'), 'w');
    this.aux = openSync(path.join(dir, 'aux.u8'), 'w');
    this.specs = openSync(path.join(dir, 'spec.i32'), 'w');
    this.objects = openSync(path.join(dir, 'objects.f32'), 'w');
    this.fits = openSync(path.join(dir, 'fits.f32'), 'w');
  }

  /** One pair per item, all of source image `group`. */
  addImage(group: number, raw: Uint8Array, dets: readonly Detection[], fits: ReadonlyMap<Detection, readonly number[]>, items: readonly PairItem[]): void {
    const grid = Buffer.from(auxGrid(dets));
    const rows = Buffer.from(objectRows(dets).buffer);
    const fitted = Buffer.from(fitRows(dets, fits).buffer);
    if (dets.length > OBJECT_SLOTS) this.truncatedObjects++;
    for (const it of items) {
      this.writer.addRaw(it.record, raw, it.label);
      writeSync(this.groups, Buffer.from(new Int32Array([group]).buffer));
      writeSync(this.ownFile, Buffer.from([it.own ? 1 : 0]));
      writeSync(this.aux, grid);
      const spec = encodePrompt(it.record.prompt);
      if (it.spec && encodeSpec(it.spec).some((v, k) => v !== spec[k])) this.specMismatches++;
      writeSync(this.specs, Buffer.from(spec.buffer));
      writeSync(this.objects, rows);
      writeSync(this.fits, fitted);
      this.pairs++;
      this.positives += it.label;
      if (it.own) {
        this.own++;
        this.ownPositives += it.label;
      }
    }
  }

  close(): void {
    for (const fd of [this.groups, this.ownFile, this.aux, this.specs, this.objects, this.fits]) closeSync(fd);
  }
}
