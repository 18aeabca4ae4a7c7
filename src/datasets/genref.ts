/**
 * GenRef-Shapes: ReflectionFlow's reflection-tuning data (the official GenRef release: triplets of a flawed image,
 * a reflection and an enhanced image, with the prompt) for ShapeWorld, written as WebDataset tar shards.
 *
 * Sources (`GenrefRecord.source`):
 * - `rule`   a correct render of a training prompt (enhanced) and a copy with one defect made by one edit in the
 *            procedural edit language (flawed); the reflection is planned from the flawed scene's truth.
 * - `model`  K generator samples of a training prompt judged by the evaluator: the first failing sample (flawed)
 *            and the first passing one (enhanced); the reflection is planned from the failing sample's detections.
 * - `refine` one generator seed before (flawed) and after (enhanced) a refined prompt; the refiner is injected.
 * - `edit`   a generator sample and the same sample with one side edited on its own pixels (pixel-edit.ts), so that
 *            the two images differ only where the reflection says: a failing sample (flawed) and its reflection
 *            carried out (enhanced), or a passing sample (enhanced) and a copy given one rule-based defect (flawed).
 *            What a corrector should learn to do to the images it is really given: keep everything, change one thing.
 * - `run`    every chain step of a finished search run (`exportRunTriplets`): parent image, the reflection the
 *            corrector was given, child image, both verifier scores.
 *
 * Shard format (`genref-000000.tar`, `genref-000001.tar`, …; plain POSIX tar, no compression, members in sample
 * order, mtime 0, uid/gid 0, mode 0644): each sample is three members sharing a key,
 *   `<key>.json`          the GenrefRecord (UTF-8 JSON),
 *   `<key>.flawed.png`    the flawed image (RGB PNG, 32×32 for the ShapeWorld sources),
 *   `<key>.enhanced.png`  the enhanced image.
 * Keys contain no dots (WebDataset splits a member name at the first dot of its basename). `index.json` beside the
 * shards lists them and counts triplets per source, defect and tag, and what was dropped and why.
 *
 * Reading from Python (no extra packages):
 *   import tarfile, json, io
 *   with tarfile.open('genref-000000.tar') as tf:
 *       for m in tf:                       # members come grouped by key: json, flawed.png, enhanced.png
 *           key, ext = m.name.split('.', 1)
 *           data = tf.extractfile(m).read()
 *           if ext == 'json': record = json.loads(data)
 *   or with webdataset: wds.WebDataset(glob('genref-*.tar')).decode('pil').to_tuple('flawed.png', 'enhanced.png', 'json')
 *
 * Same options and seed ⇒ byte-identical shards, whatever the number of workers: every triplet is a pure function of
 * (seed, source, index), and triplets are written in a fixed order.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs, readdirSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import pLimit from 'p-limit';
import tar from 'tar-stream';
import { applyEdit, editToText, planEdits, type Edit, type ObjectRef } from '../shapeworld/edits.js';
import { UserError, errorMessage } from '../core/errors.js';
import type { Role } from '../core/strategies.js';
import type { Candidate, Evaluation } from '../core/types.js';
import { writeFileAtomic } from '../store/atomic.js';
import { makeOutputDir } from '../store/dirs.js';
import { IMAGES_DIR, readRunRecord } from '../store/run-store.js';
import type { RunRecord } from '../store/types.js';
import { evaluateImage } from '../shapeworld/evaluate.js';
import { editPixels } from '../shapeworld/pixel-edit.js';
import { compositionalTrainPrompts } from '../shapeworld/compositional.js';
import { inferTag, parsePrompt, trainPrompts } from '../shapeworld/prompts.js';
import { mixSeed, Rng } from '../shapeworld/random.js';
import { MODEL_SIZE, renderScene } from '../shapeworld/render.js';
import { canonicalSpec, MIRROR, RELATIONS, type Detection, type PromptRecord, type PromptSpec, type Relation } from '../shapeworld/rules.js';
import { refinePrompt } from '../shapeworld/refine.js';
import {
  applicableDefects,
  judgeScene,
  pickDefect,
  relationMargin,
  sceneDetections,
  sceneForSpec,
  type Defect,
  type Scene,
  type SceneObject,
} from '../shapeworld/scene.js';
import { COLORS, SHAPES, type Color, type Shape } from '../shapeworld/shapes.js';
import { DEFAULT_SHARD_SIZE } from './defaults.js';

export const GENREF_FORMAT = 'genref-shapes';
export const GENREF_VERSION = 1;
/** Shard file names: `genref-000000.tar`, … */
export const SHARD_PREFIX = 'genref-';
export const INDEX_FILE = 'index.json';
export { DEFAULT_SHARD_SIZE };
/** Member suffixes of one sample, after `<key>.` */
export const MEMBERS = { record: 'json', flawed: 'flawed.png', enhanced: 'enhanced.png' } as const;

export type GenrefSource = 'rule' | 'model' | 'refine' | 'edit' | 'run';
export const GENREF_SOURCES: readonly GenrefSource[] = ['rule', 'model', 'refine', 'edit', 'run'];

/** What is known of one image of a triplet. */
export interface GenrefJudgement {
  /**
   * Does the image satisfy the prompt? ShapeWorld sources: the evaluator's verdict (always false for `flawed`,
   * true for `enhanced`, or the triplet is dropped). `run`: the run verifier's yes/no label; a verifier without a
   * label (rubric verifiers, score = overall / 10) counts `score ≥ 0.5` as yes.
   */
  verdict: boolean;
  /**
   * ShapeWorld sources: the evaluator's fraction of satisfied clauses (1 when correct). `run`: the run verifier's
   * score, on that verifier's own scale (higher is better).
   */
  score?: number;
  /** `run`: the verifier's label, when it gave one */
  label?: 'yes' | 'no';
  /** ShapeWorld sources, flawed image: the evaluator's reasons (GenEval style, one per failed clause) */
  reason?: string;
}

/** One triplet's record: `<key>.json` in a shard. Optional fields appear only where they apply. */
export interface GenrefRecord {
  /** unique, stable and deterministic: `s<seed>-<source>-<index>` (built), `run-<runId>-<candidateId>` (exported) */
  key: string;
  source: GenrefSource;
  /** the original prompt: both images are judged against it (official GenRef: prompt.txt) */
  prompt: string;
  /** GenEval category (`single_object`, `two_object`, `counting`, `colors`, `position`, `color_attr`); `run`: the
   *  run's metadata tag, else inferred from the parsed prompt, else `unknown` */
  tag: string;
  /** the GenEval include/exclude record the evaluator judged against (ShapeWorld sources; `run`: when it had one) */
  spec?: PromptSpec;
  /** the reflection: edit instructions for the flawed image, one per line (official GenRef: reflection.txt) */
  reflection: string;
  /** the same instructions as a list (`reflection` = `items.join('\n')`) */
  items: string[];
  /** the flawed image (official GenRef: bad_image) */
  flawed: GenrefJudgement;
  /** the enhanced image (official GenRef: good_image) */
  enhanced: GenrefJudgement;
  /** `rule`, and `edit` when the flawed image is the edited one: which defect the flawed image carries */
  defect?: Defect;
  /** `rule`, and `edit` when the flawed image is the edited one: the edit(s) that made the flawed image from the
   *  enhanced one (the reflection undoes them) */
  perturbation?: string[];
  /** `edit`: which image is the pixel-edited copy of the other (the other is the generator sample) */
  edited?: 'flawed' | 'enhanced';
  /** the refined prompt of the step, in the layout wording a corrector reads before `[Reflexion]:` — `rule` and
   *  `model`: the refiner's rewrite (`refinePrompt`) of the enhanced image's objects, i.e. the layout the step
   *  arrives at; `refine`: the refined prompt the enhanced image was generated from; `run`: the prompt the child
   *  image was made from, when it differs from `prompt` */
  refinedPrompt?: string;
  /** seed of the flawed image: `rule` the scene seed (the flawed scene is that scene, edited), `model`, `refine` and
   *  `edit` the generator seed, `run` the parent candidate's seed */
  seedFlawed?: number;
  /** seed of the enhanced image (same conventions) */
  seedEnhanced?: number;
  /** built sources: position of the prompt in the source's prompt stream (keys use it; drops leave gaps) */
  index?: number;
  /** `run`: where the step comes from */
  run?: {
    id: string;
    strategy: string;
    parentId: string;
    childId: string;
    round: number;
    chain: number | null;
    /** backend name per role */
    backends: Partial<Record<Role, string>>;
  };
}

/** One sample of a shard: its record and both images' PNG bytes. */
export interface GenrefSample {
  record: GenrefRecord;
  flawed: Uint8Array;
  enhanced: Uint8Array;
}

export interface ShardInfo {
  file: string;
  triplets: number;
  bytes: number;
  sha256: string;
}

/** index.json */
export interface GenrefIndex {
  format: typeof GENREF_FORMAT;
  version: typeof GENREF_VERSION;
  /** the command that wrote the set (as given to the builder) */
  command: string;
  /** build seed (null for exports) */
  seed: number | null;
  triplets: number;
  shardSize: number;
  shards: ShardInfo[];
  /** member suffixes of each sample */
  members: typeof MEMBERS;
  sources: Record<GenrefSource, number>;
  defects: Partial<Record<Defect, number>>;
  tags: Record<string, number>;
  /** candidates left out, per source and reason */
  dropped: Partial<Record<GenrefSource, Record<string, number>>>;
  /** sources not built, and why */
  skipped: string[];
  options: Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------------------------
// Shards

const pad6 = (n: number): string => String(n).padStart(6, '0');
export const shardName = (i: number): string => `${SHARD_PREFIX}${pad6(i)}.tar`;
const SHARD_RE = /^genref-(\d{6})\.tar$/;
const TEMP_RE = /^\.genref-\d{6}\.tar\.\d+\.tmp$/;

/** Writes samples into numbered tar shards, each atomically (temp file, then rename). */
export class ShardWriter {
  private pack: tar.Pack | null = null;
  private consumer: Promise<{ bytes: number; sha256: string }> | null = null;
  private tmp = '';
  private inShard = 0;
  private readonly infos: ShardInfo[] = [];
  private readonly keys = new Set<string>();

  constructor(
    readonly dir: string,
    readonly shardSize: number,
  ) {}

  get written(): number {
    return this.infos.reduce((n, s) => n + s.triplets, 0) + this.inShard;
  }

  async add(sample: GenrefSample): Promise<void> {
    const { key } = sample.record;
    if (!/^[A-Za-z0-9_-]+$/.test(key)) throw new Error(`genref key '${key}' has characters other than letters, digits, - and _`);
    if (this.keys.has(key)) throw new Error(`genref key '${key}' written twice`);
    this.keys.add(key);
    if (!this.pack) this.open();
    const json = Buffer.from(JSON.stringify(sample.record) + '\n');
    await this.entry(`${key}.${MEMBERS.record}`, json);
    await this.entry(`${key}.${MEMBERS.flawed}`, Buffer.from(sample.flawed));
    await this.entry(`${key}.${MEMBERS.enhanced}`, Buffer.from(sample.enhanced));
    this.inShard++;
    if (this.inShard >= this.shardSize) await this.finishShard();
  }

  /** Finish the last shard; returns every shard written. */
  async close(): Promise<ShardInfo[]> {
    if (this.pack) await this.finishShard();
    return this.infos;
  }

  /** Drop the shard in progress (its temp file). */
  async abort(): Promise<void> {
    if (!this.pack) return;
    this.pack.destroy();
    await this.consumer?.catch(() => undefined);
    rmSync(this.tmp, { force: true });
    this.pack = null;
  }

  private open(): void {
    const name = shardName(this.infos.length);
    this.tmp = path.join(this.dir, `.${name}.${process.pid}.tmp`);
    const pack = tar.pack();
    const tmp = this.tmp;
    this.consumer = (async () => {
      const fh = await fs.open(tmp, 'w');
      const hash = createHash('sha256');
      let bytes = 0;
      try {
        for await (const chunk of pack as AsyncIterable<Buffer>) {
          hash.update(chunk);
          bytes += chunk.length;
          await fh.write(chunk);
        }
      } finally {
        await fh.close();
      }
      return { bytes, sha256: hash.digest('hex') };
    })();
    // an error of the consumer surfaces at finishShard; keep it from being unhandled meanwhile
    this.consumer.catch(() => undefined);
    this.pack = pack;
    this.inShard = 0;
  }

  private entry(name: string, data: Buffer): Promise<void> {
    const pack = this.pack as tar.Pack;
    return new Promise((resolve, reject) => {
      pack.entry({ name, size: data.length, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0, uname: '', gname: '', type: 'file' }, data, (err) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  private async finishShard(): Promise<void> {
    const pack = this.pack as tar.Pack;
    pack.finalize();
    const { bytes, sha256 } = await (this.consumer as Promise<{ bytes: number; sha256: string }>);
    const file = shardName(this.infos.length);
    await fs.rename(this.tmp, path.join(this.dir, file));
    this.infos.push({ file, triplets: this.inShard, bytes, sha256 });
    this.pack = null;
    this.consumer = null;
    this.inShard = 0;
  }
}

/**
 * Read one shard: its samples in order. Throws when a sample lacks one of its three members or its record does
 * not name its key.
 */
export async function* readGenrefShard(file: string): AsyncGenerator<GenrefSample> {
  const extract = tar.extract();
  const input = createReadStream(file);
  input.on('error', (err) => extract.destroy(err));
  input.pipe(extract as unknown as NodeJS.WritableStream);
  let key: string | null = null;
  let parts: Partial<Record<'record' | 'flawed' | 'enhanced', Buffer>> = {};
  const finish = (): GenrefSample => {
    for (const m of ['record', 'flawed', 'enhanced'] as const) {
      if (!parts[m]) throw new Error(`${file}: sample '${key}' has no ${MEMBERS[m]} member`);
    }
    const record = JSON.parse(parts.record!.toString('utf8')) as GenrefRecord;
    if (record.key !== key) throw new Error(`${file}: sample '${key}' holds the record of '${record.key}'`);
    return { record, flawed: new Uint8Array(parts.flawed!), enhanced: new Uint8Array(parts.enhanced!) };
  };
  try {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry as AsyncIterable<Buffer>) chunks.push(chunk);
      const base = path.posix.basename(entry.header.name);
      const dot = base.indexOf('.');
      if (entry.header.type !== 'file' || dot <= 0) continue;
      const k = base.slice(0, dot);
      const ext = base.slice(dot + 1);
      const member = (Object.keys(MEMBERS) as Array<keyof typeof MEMBERS>).find((m) => MEMBERS[m] === ext);
      if (!member) continue; // members a later version may add
      if (k !== key) {
        if (key !== null) yield finish();
        key = k;
        parts = {};
      }
      parts[member] = Buffer.concat(chunks);
    }
    if (key !== null) yield finish();
  } finally {
    input.destroy();
    extract.destroy();
  }
}

/** The shard files of a GenRef-Shapes folder, in order. */
export function listShards(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => SHARD_RE.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

async function prepareOut(out: string): Promise<void> {
  makeOutputDir(out);
}

/**
 * Shards of an earlier, larger set in the same folder would be read as part of this one: remove them, and the temp
 * files of a build that was killed.
 */
function removeStaleShards(dir: string, kept: number): void {
  for (const f of readdirSync(dir)) {
    const m = SHARD_RE.exec(f);
    if ((m && Number(m[1]) >= kept) || TEMP_RE.test(f)) rmSync(path.join(dir, f), { force: true });
  }
}

class Tally {
  readonly sources: Record<GenrefSource, number> = { rule: 0, model: 0, refine: 0, edit: 0, run: 0 };
  readonly defects: Partial<Record<Defect, number>> = {};
  readonly tags: Record<string, number> = {};
  readonly dropped: Partial<Record<GenrefSource, Record<string, number>>> = {};
  add(r: GenrefRecord): void {
    this.sources[r.source]++;
    if (r.defect) this.defects[r.defect] = (this.defects[r.defect] ?? 0) + 1;
    this.tags[r.tag] = (this.tags[r.tag] ?? 0) + 1;
  }
  drop(source: GenrefSource, reason: string): void {
    const d = (this.dropped[source] ??= {});
    d[reason] = (d[reason] ?? 0) + 1;
  }
}

function sorted<T>(rec: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(rec).sort(([a], [b]) => a.localeCompare(b)));
}

/** Close the last shard, write index.json, drop shards an earlier, larger build left behind. */
async function finish(
  writer: ShardWriter,
  out: string,
  indexOf: (shards: Awaited<ReturnType<ShardWriter['close']>>) => GenrefIndex,
): Promise<GenrefBuildResult> {
  const shards = await writer.close();
  const index = indexOf(shards);
  writeIndex(out, index);
  removeStaleShards(out, shards.length);
  return { index, shards: shards.map((s) => path.join(out, s.file)) };
}

function writeIndex(dir: string, index: GenrefIndex): void {
  writeFileAtomic(path.join(dir, INDEX_FILE), JSON.stringify(index, null, 2) + '\n');
}

function makeIndex(
  command: string,
  seed: number | null,
  shardSize: number,
  shards: ShardInfo[],
  tally: Tally,
  skipped: string[],
  options: Record<string, unknown>,
): GenrefIndex {
  return {
    format: GENREF_FORMAT,
    version: GENREF_VERSION,
    command,
    seed,
    triplets: shards.reduce((n, s) => n + s.triplets, 0),
    shardSize,
    shards,
    members: MEMBERS,
    sources: tally.sources,
    defects: sorted(tally.defects),
    tags: sorted(tally.tags),
    dropped: Object.fromEntries(Object.entries(tally.dropped).map(([s, d]) => [s, sorted(d)])),
    skipped,
    options,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Source (a): rule-based perturbations of correct renders


const refOf = (o: SceneObject): ObjectRef => ({ shape: o.shape, color: o.color });
const serves = (o: SceneObject, c: PromptSpec['include'][number]): boolean => o.shape === c.class && (!c.color || o.color === c.color);

/**
 * One or two edits that give the correct `scene` the `defect` and leave everything else where it was (an edit may
 * move what it touches, never the rest). Null when this scene offers no way to it.
 */
function perturbation(scene: Scene, spec: PromptSpec, defect: Defect, rng: Rng): Edit[] | null {
  const include = spec.include;
  const mentioned = new Set<string>([...include.map((c) => c.class), ...(spec.exclude ?? []).map((e) => e.class)]);
  const clauseObjects = (filter: (c: PromptSpec['include'][number]) => boolean): SceneObject[] =>
    scene.filter((o) => include.some((c) => filter(c) && serves(o, c)));
  switch (defect) {
    case 'missing': {
      const objs = clauseObjects(() => true);
      return objs.length ? [{ op: 'remove', object: refOf(rng.pick(objs)) }] : null;
    }
    case 'extra': {
      const ex = (spec.exclude ?? []).find((e) => include.some((c) => c.class === e.class && e.count === c.count + 1));
      if (!ex) return null;
      const same = scene.find((o) => o.shape === ex.class);
      const color: Color = same && rng.chance(0.5) ? same.color : rng.pick(COLORS);
      return [{ op: 'add', object: { shape: ex.class as Shape, color } }];
    }
    case 'wrong_color': {
      const objs = clauseObjects((c) => c.color !== undefined);
      if (!objs.length) return null;
      const o = rng.pick(objs);
      return [{ op: 'replace', object: refOf(o), with: { shape: o.shape, color: rng.pick(COLORS.filter((c) => c !== o.color)) } }];
    }
    case 'wrong_relation': {
      const clauses = include.filter((c) => c.position);
      if (!clauses.length) return null;
      const c = rng.pick(clauses);
      const [rel, target] = c.position!;
      const obj = scene.find((o) => serves(o, c));
      const t = include[target];
      const anchor = t ? scene.find((o) => serves(o, t)) : undefined;
      if (!obj || !anchor) return null;
      const perpendicular = RELATIONS.filter((r) => r !== rel && r !== MIRROR[rel]);
      const to = rng.chance(0.5) ? MIRROR[rel] : rng.pick(perpendicular);
      return [{ op: 'move', object: refOf(obj), relation: { rel: to, ref: refOf(anchor) } }];
    }
    case 'swapped_binding': {
      const objs = clauseObjects((c) => c.color !== undefined);
      const pairs: Array<[SceneObject, SceneObject]> = [];
      for (const a of objs) for (const b of objs) if (a !== b && a.shape < b.shape && a.color !== b.color) pairs.push([a, b]);
      if (!pairs.length) return null;
      const [a, b] = rng.pick(pairs);
      return [
        { op: 'replace', object: refOf(a), with: { shape: a.shape, color: b.color } },
        { op: 'replace', object: { shape: b.shape, color: b.color }, with: { shape: b.shape, color: a.color } },
      ];
    }
    case 'wrong_class': {
      const objs = clauseObjects(() => true);
      const others = SHAPES.filter((s) => !mentioned.has(s) && !scene.some((o) => o.shape === s));
      if (!objs.length || !others.length) return null;
      const o = rng.pick(objs);
      return [{ op: 'replace', object: refOf(o), with: { shape: rng.pick(others), color: o.color } }];
    }
  }
}

/** The relation clauses of `spec` that `scene` breaks only narrowly (an evaluator could read them either way). */
function ambiguousRelation(scene: Scene, spec: PromptSpec): boolean {
  for (const c of spec.include) {
    if (!c.position) continue;
    const t = spec.include[c.position[1]];
    if (!t) continue;
    for (const o of scene.filter((x) => serves(x, c))) {
      for (const a of scene.filter((x) => serves(x, t))) {
        const m = relationMargin(o, a, c.position[0]);
        if (m > 0.3 && m < 0.7) return true;
      }
    }
  }
  return false;
}

type RuleOutcome = { ok: true; sample: GenrefSample } | { ok: false; reason: string };

/**
 * A defect for a correct `scene`, drawn as the procedural generator draws it, and what `make` makes of its edits;
 * when this scene offers no way to a defect or `make` refuses it (null), the next applicable one. Null when none is
 * left.
 */
async function drawDefect<T>(
  scene: Scene,
  spec: PromptSpec,
  rng: Rng,
  make: (plan: Edit[]) => T | null | Promise<T | null>,
): Promise<{ defect: Defect; edits: Edit[]; made: T } | null> {
  let remaining = applicableDefects(spec);
  while (remaining.length) {
    const d = pickDefect(remaining, rng);
    remaining = remaining.filter((x) => x !== d);
    const plan = perturbation(scene, spec, d, rng);
    if (!plan) continue;
    const made = await make(plan);
    if (made !== null) return { defect: d, edits: plan, made };
  }
  return null;
}

/** Rule-based triplet `index` of a build with `seed`, from training prompt `record`. Pure in its arguments. */
export async function ruleTriplet(seed: number, index: number, record: PromptRecord): Promise<RuleOutcome> {
  const sceneSeed = mixSeed(seed, 'genref-rule-scene', index);
  let enhancedScene: Scene;
  try {
    enhancedScene = sceneForSpec(record, sceneSeed);
  } catch {
    return { ok: false, reason: 'no_scene' }; // no room for the prompt's objects in 200 layouts
  }
  const rng = new Rng(mixSeed(seed, 'genref-rule-defect', index));
  const broken = await drawDefect(enhancedScene, record, rng, (plan) => {
    let s: Scene | null = enhancedScene;
    for (const e of plan) s = s ? applyEdit(s, e, rng) : null;
    return !s || judgeScene(s, record).correct || ambiguousRelation(s, record) ? null : s;
  });
  if (!broken) return { ok: false, reason: 'no_perturbation' };
  const { defect, edits, made: flawedScene } = broken;
  const items = planEdits(sceneDetections(flawedScene), record).map(editToText);
  if (!items.length) return { ok: false, reason: 'no_reflection' };
  const [flawed, enhanced] = await Promise.all([renderScene(flawedScene, MODEL_SIZE), renderScene(enhancedScene, MODEL_SIZE)]);
  const [jf, je] = await Promise.all([judgePng(flawed, record), judgePng(enhanced, record)]);
  if (jf.correct) return { ok: false, reason: 'evaluator_passes_flawed' };
  if (!je.correct) return { ok: false, reason: 'evaluator_fails_enhanced' };
  return {
    ok: true,
    sample: {
      record: {
        key: buildKey(seed, 'rule', index),
        source: 'rule',
        prompt: record.prompt,
        tag: record.tag,
        spec: specOf(record),
        reflection: items.join('\n'),
        items,
        flawed: { verdict: false, score: jf.score, reason: jf.reason },
        enhanced: { verdict: true, score: je.score },
        defect,
        perturbation: edits.map(editToText),
        refinedPrompt: refinePrompt(canonicalSpec(record), sceneDetections(enhancedScene), []),
        seedFlawed: sceneSeed,
        seedEnhanced: sceneSeed,
        index,
      },
      flawed: own(flawed),
      enhanced: own(enhanced),
    },
  };
}

/**
 * Edit-based triplet `index` of a build with `seed`, from generator sample `png` (seed `sampleSeed`) of training
 * prompt `record`. A failing sample is the flawed image and its reflection, carried out on its pixels, the enhanced
 * one; a passing sample is the enhanced image and a copy given one rule-based defect the flawed one. Pure in its
 * arguments.
 */
export async function editTriplet(seed: number, index: number, record: PromptRecord, png: Uint8Array, sampleSeed: number): Promise<RuleOutcome> {
  const rng = new Rng(mixSeed(seed, 'genref-edit', index));
  const seen = await judgePng(png, record);
  let flawed: Uint8Array;
  let enhanced: Uint8Array;
  let jf: PngJudgement;
  let je: PngJudgement;
  let items: string[];
  let broken: { defect: Defect; edits: Edit[] } | null = null;
  if (!seen.correct) {
    const edits = planEdits(seen.detections, record);
    if (!edits.length) return { ok: false, reason: 'no_reflection' };
    const done = await editPixels(png, edits, rng);
    if (!done) return { ok: false, reason: 'edit_not_applicable' };
    je = await judgePng(done.png, record);
    if (!je.correct) return { ok: false, reason: 'edited_still_fails' };
    [flawed, enhanced, jf, items] = [png, done.png, seen, edits.map(editToText)];
  } else {
    const scene: Scene = seen.detections.map((d) => ({ shape: d.shape, color: d.color, cx: d.cx, cy: d.cy, r: d.r }));
    const drawn = await drawDefect(scene, record, rng, async (plan) => {
      const res = await editPixels(png, plan, rng);
      if (!res || ambiguousRelation(res.after, record)) return null;
      const judged = await judgePng(res.png, record);
      return judged.correct ? null : { png: res.png, judged };
    });
    if (!drawn) return { ok: false, reason: 'no_perturbation' };
    const made = drawn.made;
    broken = { defect: drawn.defect, edits: drawn.edits };
    items = planEdits(made.judged.detections, record).map(editToText);
    if (!items.length) return { ok: false, reason: 'no_reflection' };
    [flawed, enhanced, jf, je] = [made.png, png, made.judged, seen];
  }
  return {
    ok: true,
    sample: {
      record: {
        key: buildKey(seed, 'edit', index),
        source: 'edit',
        prompt: record.prompt,
        tag: record.tag,
        spec: specOf(record),
        reflection: items.join('\n'),
        items,
        flawed: { verdict: false, score: jf.score, reason: jf.reason },
        enhanced: { verdict: true, score: je.score },
        ...(broken ? { defect: broken.defect, perturbation: broken.edits.map(editToText) } : {}),
        edited: broken ? 'flawed' : 'enhanced',
        refinedPrompt: refinePrompt(canonicalSpec(record), je.detections, []),
        seedFlawed: sampleSeed,
        seedEnhanced: sampleSeed,
        index,
      },
      flawed: own(flawed),
      enhanced: own(enhanced),
    },
  };
}

export function buildKey(seed: number, source: GenrefSource, index: number): string {
  return `s${seed}-${source}-${String(index).padStart(7, '0')}`;
}

function specOf(r: PromptSpec): PromptSpec {
  return { include: r.include, ...(r.exclude ? { exclude: r.exclude } : {}) };
}

/** A copy that owns exactly its bytes (sharp's buffers may be views of larger ones). */
function own(png: Uint8Array): Uint8Array {
  return new Uint8Array(png);
}

interface PngJudgement {
  correct: boolean;
  score: number;
  reason: string;
  detections: Detection[];
}

async function judgePng(png: Uint8Array, spec: PromptSpec): Promise<PngJudgement> {
  const j = await evaluateImage(png, spec);
  return { correct: j.correct, score: j.clauses ? j.satisfied / j.clauses : 0, reason: j.reason, detections: j.detections };
}

// ---------------------------------------------------------------------------------------------------------------
// Workers: the evaluator is CPU-bound JavaScript, so rule triplets and judgements run on worker threads (this very
// module, started with a flag). From TypeScript sources (tests) the work runs in-process; results are the same.

type Task =
  | { type: 'rule'; seed: number; index: number; record: PromptRecord }
  | { type: 'edit'; seed: number; index: number; sampleSeed: number; record: PromptRecord; png: Uint8Array }
  | { type: 'judge'; png: Uint8Array; spec: PromptSpec };
type TaskResult<T extends Task> = T extends { type: 'rule' | 'edit' } ? RuleOutcome : PngJudgement;

async function runTask(task: Task): Promise<RuleOutcome | PngJudgement> {
  if (task.type === 'rule') return ruleTriplet(task.seed, task.index, task.record);
  if (task.type === 'edit') return editTriplet(task.seed, task.index, task.record, task.png, task.sampleSeed);
  return judgePng(task.png, task.spec);
}

const WORKER_FLAG = 'reflectionflow-genref-worker';
/** Calls in flight per worker (rendering waits on sharp's thread pool meanwhile). */
const PER_WORKER = 6;

/** Worker threads usable from this module: only from compiled JavaScript. */
function workersSupported(): boolean {
  return import.meta.url.endsWith('.js');
}

class TaskPool {
  private readonly workers: Array<{ worker: Worker; busy: number }> = [];
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; slot: number }>();
  private next = 0;
  private failed: Error | null = null;
  private closing = false;
  private readonly limit: ReturnType<typeof pLimit>;

  constructor(workers: number) {
    const n = workersSupported() ? workers : 0;
    for (let i = 0; i < n; i++) {
      const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { [WORKER_FLAG]: true } });
      worker.on('message', (msg: { id: number; result?: unknown; error?: string }) => {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        this.workers[p.slot]!.busy--;
        if (msg.error !== undefined) p.reject(new Error(msg.error));
        else p.resolve(msg.result);
      });
      // a worker that dies takes the build with it: every call in flight and every later one fails
      const fail = (err: Error): void => {
        this.failed ??= err;
        for (const [id, p] of this.pending) {
          this.pending.delete(id);
          p.reject(this.failed);
        }
      };
      worker.on('error', fail);
      worker.on('exit', (code) => {
        if (!this.closing) fail(new Error(`genref worker ${i} exited with code ${code}`));
      });
      this.workers.push({ worker, busy: 0 });
    }
    this.limit = pLimit(Math.max(1, n) * PER_WORKER);
  }

  get size(): number {
    return this.workers.length;
  }

  run<T extends Task>(task: T): Promise<TaskResult<T>> {
    return this.limit(() => {
      if (this.failed) return Promise.reject(this.failed);
      if (!this.workers.length) return runTask(task) as Promise<TaskResult<T>>;
      let slot = 0;
      this.workers.forEach((w, i) => {
        if (w.busy < this.workers[slot]!.busy) slot = i;
      });
      const id = this.next++;
      this.workers[slot]!.busy++;
      return new Promise<TaskResult<T>>((resolve, reject) => {
        this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, slot });
        this.workers[slot]!.worker.postMessage({ id, task });
      });
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
    this.workers.length = 0;
  }
}

if (!isMainThread && parentPort && (workerData as Record<string, unknown> | null)?.[WORKER_FLAG] === true) {
  const port = parentPort;
  port.on('message', (msg: { id: number; task: Task }) => {
    runTask(msg.task).then(
      (result) => {
        const transfer: ArrayBuffer[] = [];
        if ('ok' in result && result.ok) transfer.push(result.sample.flawed.buffer as ArrayBuffer, result.sample.enhanced.buffer as ArrayBuffer);
        port.postMessage({ id: msg.id, result }, transfer);
      },
      (err: unknown) => port.postMessage({ id: msg.id, error: errorMessage(err) }),
    );
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The builder

/** Images for (prompt, seed) requests, in request order: the model-based and refinement-based sources' generator. */
export type GenerateFn = (reqs: Array<{ prompt: string; seed: number }>) => Promise<Uint8Array[]>;
/** A prompt refiner: the original prompt, the flawed image's detections and its reflection in, a new prompt out. */
export type RefineFn = (prompt: string, detections: Detection[], reflection: { text: string; items: string[] }) => string | Promise<string>;

export interface GenrefBuildOptions {
  out: string;
  /** rule-based triplets (exactly this many are written; dropped candidates are replaced by later prompts) */
  count: number;
  /** model-based: training prompts sampled (each gives at most one triplet) */
  modelPrompts?: number;
  /** model-based: generator seeds per prompt */
  modelSeeds?: number;
  /** refinement-based: training prompts tried (each gives at most one triplet) */
  refineCount?: number;
  /** edit-based: training prompts sampled (each sample gives at most one triplet) */
  editPrompts?: number;
  /** edit-based: generator seeds per prompt */
  editSeeds?: number;
  /** share of every source's prompts drawn from the compositional kinds (training combinations only; default 0) */
  compositional?: number;
  seed: number;
  shardSize?: number;
  /** the generator of the model-, refinement- and edit-based sources; without it those sources are skipped */
  generate?: GenerateFn;
  /** its name (and settings) for index.json, e.g. `embedded:<hash>:steps=12:guidance=3` */
  generatorName?: string;
  /** the refiner of the refinement-based source; without it that source is skipped */
  refine?: RefineFn;
  /** worker threads for rendering and judging (default: available cores; 0 = in-process) */
  workers?: number;
  /** recorded in index.json */
  command?: string;
  /** one line per stage, for the CLI's stderr */
  onLog?: (msg: string) => void;
  onProgress?: (source: GenrefSource, done: number, total: number) => void;
}

export interface GenrefBuildResult {
  index: GenrefIndex;
  shards: string[];
}

/** Prompts per block of the rule source's prompt stream (block b is drawn from its own seed). */
const RULE_BLOCK = 4096;
/** Rule triplets worked on at once (results are written in index order). */
const RULE_CHUNK = 1024;
/** Prompts per generator call of the model-based source (× modelSeeds images). */
const MODEL_BATCH = 16;

function positiveInt(name: string, v: number, min: number): number {
  if (!Number.isSafeInteger(v) || v < min) throw new UserError(`${name} must be an integer ≥ ${min}, got ${v}`);
  return v;
}

/** `count` prompts from `seed` for one source. */
type PromptSource = (count: number, seed: number) => PromptRecord[];

/**
 * Training prompts with a share of compositional ones (the four kinds just beyond GenEval's six, training
 * combinations only, never a check-set spec; the four kinds in equal shares). A share of 0 gives exactly the GenEval-kind stream of before.
 */
function sourcePrompts(count: number, seed: number, share: number): PromptRecord[] {
  const nComp = Math.round(count * share);
  if (nComp === 0) return trainPrompts({ count, seed });
  return new Rng(mixSeed(seed, 'genref-mix')).shuffle([
    ...trainPrompts({ count: count - nComp, seed }),
    ...compositionalTrainPrompts(nComp, mixSeed(seed, 'genref-compositional'), { balanced: true }),
  ]);
}

/** Build GenRef-Shapes into `opts.out`: model- and refinement-based triplets spread evenly among rule-based ones. */
export async function buildGenref(opts: GenrefBuildOptions): Promise<GenrefBuildResult> {
  const count = positiveInt('--count', opts.count, 0);
  const modelPrompts = positiveInt('--model-prompts', opts.modelPrompts ?? 0, 0);
  const modelSeeds = positiveInt('--model-seeds', opts.modelSeeds ?? 4, 2);
  const refineCount = positiveInt('--refine-count', opts.refineCount ?? 0, 0);
  const editPrompts = positiveInt('--edit-prompts', opts.editPrompts ?? 0, 0);
  const editSeeds = positiveInt('--edit-seeds', opts.editSeeds ?? 4, 1);
  const compositional = opts.compositional ?? 0;
  if (!(compositional >= 0 && compositional <= 1)) throw new UserError(`--compositional must be a share from 0 to 1, got ${compositional}`);
  const prompts: PromptSource = (n, s) => sourcePrompts(n, s, compositional);
  const shardSize = positiveInt('--shard-size', opts.shardSize ?? DEFAULT_SHARD_SIZE, 1);
  const seed = positiveInt('--seed', opts.seed, 0);
  const workers = positiveInt('--workers', opts.workers ?? availableParallelism(), 0);
  const log = opts.onLog ?? (() => undefined);
  await prepareOut(opts.out);

  const tally = new Tally();
  const skipped: string[] = [];
  const pool = new TaskPool(workers);
  const writer = new ShardWriter(opts.out, shardSize);
  try {
    const extras: GenrefSample[] = [];
    if (modelPrompts > 0) {
      if (!opts.generate) skipped.push(`model: ${modelPrompts} prompts asked for, but no generator was given`);
      else {
        const made = await modelSource(opts.generate, pool, tally, { prompts, seed, count: modelPrompts, seeds: modelSeeds, onProgress: opts.onProgress });
        extras.push(...made);
        log(`model-based: ${made.length} triplets from ${modelPrompts} prompts × ${modelSeeds} seeds`);
      }
    }
    if (refineCount > 0) {
      if (!opts.refine || !opts.generate) {
        const why = `refine: ${refineCount} prompts asked for, but no ${opts.refine ? 'generator' : 'prompt refiner'} was given; source skipped`;
        skipped.push(why);
        log(why);
      } else {
        const made = await refineSource(opts.generate, opts.refine, pool, tally, { prompts, seed, count: refineCount, onProgress: opts.onProgress });
        extras.push(...made);
        log(`refinement-based: ${made.length} triplets from ${refineCount} prompts`);
      }
    }
    if (editPrompts > 0) {
      if (!opts.generate) skipped.push(`edit: ${editPrompts} prompts asked for, but no generator was given`);
      else {
        const made = await editSource(opts.generate, pool, tally, { prompts, seed, count: editPrompts, seeds: editSeeds, onProgress: opts.onProgress });
        extras.push(...made);
        log(`edit-based: ${made.length} triplets from ${editPrompts} prompts × ${editSeeds} seeds`);
      }
    }
    // extras (model, refine, then edit) go to evenly spaced places among the rule-based triplets, so every shard mixes them
    const total = count + extras.length;
    const slots = extras.map((_, e) => Math.floor(((e + 1) * total) / (extras.length + 1)));
    let nextExtra = 0;
    const emit = async (sample: GenrefSample): Promise<void> => {
      tally.add(sample.record);
      await writer.add(sample);
    };
    const flushExtras = async (): Promise<void> => {
      while (nextExtra < extras.length && slots[nextExtra]! <= writer.written) await emit(extras[nextExtra++]!);
    };
    await ruleSource(pool, tally, { prompts, seed, count }, async (sample) => {
      await flushExtras();
      await emit(sample);
      opts.onProgress?.('rule', tally.sources.rule, count);
    });
    while (nextExtra < extras.length) await emit(extras[nextExtra++]!);
    return await finish(writer, opts.out, (shards) =>
      makeIndex(opts.command ?? '', seed, shardSize, shards, tally, skipped, {
        count,
        modelPrompts,
        modelSeeds,
        refineCount,
        editPrompts,
        editSeeds,
        ...(compositional > 0 ? { compositional } : {}),
        size: MODEL_SIZE,
        ...(opts.generatorName ? { generator: opts.generatorName } : {}),
      }),
    );
  } catch (err) {
    await writer.abort();
    throw err;
  } finally {
    await pool.close();
  }
}

async function ruleSource(
  pool: TaskPool,
  tally: Tally,
  o: { prompts: PromptSource; seed: number; count: number },
  emit: (s: GenrefSample) => Promise<void>,
): Promise<void> {
  let made = 0;
  let block = -1;
  let prompts: PromptRecord[] = [];
  const promptAt = (i: number): PromptRecord => {
    const b = Math.floor(i / RULE_BLOCK);
    if (b !== block) {
      block = b;
      prompts = o.prompts(RULE_BLOCK, mixSeed(o.seed, 'genref-rule-prompts', b));
    }
    return prompts[i % RULE_BLOCK]!;
  };
  for (let start = 0; made < o.count; ) {
    // a chunk a little larger than what is still needed (drops are rare), at most RULE_CHUNK; which candidates are
    // kept does not depend on the chunking: always the first `count` that succeed, in index order
    const n = Math.min(RULE_CHUNK, Math.ceil((o.count - made) * 1.05) + 8);
    const outcomes = await Promise.all(
      Array.from({ length: n }, (_, j) => pool.run({ type: 'rule', seed: o.seed, index: start + j, record: promptAt(start + j) })),
    );
    start += n;
    for (const r of outcomes) {
      if (made >= o.count) break;
      if (!r.ok) {
        tally.drop('rule', r.reason);
        continue;
      }
      made++;
      await emit(r.sample);
    }
  }
}

async function modelSource(
  generate: GenerateFn,
  pool: TaskPool,
  tally: Tally,
  o: { prompts: PromptSource; seed: number; count: number; seeds: number; onProgress?: GenrefBuildOptions['onProgress'] },
): Promise<GenrefSample[]> {
  const records = o.prompts(o.count, mixSeed(o.seed, 'genref-model-prompts'));
  const out: Array<GenrefSample | null> = new Array(records.length).fill(null);
  const sampleSeed = (i: number, k: number): number => mixSeed(o.seed, 'genref-model-sample', i, k);
  await sampleBatches(generate, records, o.seeds, sampleSeed, async (idx, pngs) => {
    const judged = await Promise.all(pngs.map((png, n) => pool.run({ type: 'judge', png: own(png), spec: specOf(records[idx[Math.floor(n / o.seeds)]!]!) })));
    idx.forEach((i, j) => {
      const rec = records[i]!;
      const js = judged.slice(j * o.seeds, (j + 1) * o.seeds);
      const kf = js.findIndex((x) => !x.correct);
      const kp = js.findIndex((x) => x.correct);
      if (kf < 0 || kp < 0) {
        tally.drop('model', kf < 0 ? 'all_samples_pass' : 'all_samples_fail');
        return;
      }
      const jf = js[kf]!;
      const items = planEdits(jf.detections, rec).map(editToText);
      if (!items.length) {
        tally.drop('model', 'no_reflection');
        return;
      }
      out[i] = {
        record: {
          key: buildKey(o.seed, 'model', i),
          source: 'model',
          prompt: rec.prompt,
          tag: rec.tag,
          spec: specOf(rec),
          reflection: items.join('\n'),
          items,
          flawed: { verdict: false, score: jf.score, reason: jf.reason },
          enhanced: { verdict: true, score: js[kp]!.score },
          refinedPrompt: refinePrompt(canonicalSpec(rec), js[kp]!.detections, []),
          seedFlawed: sampleSeed(i, kf),
          seedEnhanced: sampleSeed(i, kp),
          index: i,
        },
        flawed: own(pngs[j * o.seeds + kf]!),
        enhanced: own(pngs[j * o.seeds + kp]!),
      };
    });
  }, (done) => o.onProgress?.('model', done, records.length));
  return out.filter((s): s is GenrefSample => s !== null);
}

/**
 * Generate `seeds` samples of every record, in batches of MODEL_BATCH prompts (the next batch's generation overlaps
 * this one's judging); `onBatch` gets each batch's record indices and its images, `seeds` per record in order.
 */
async function sampleBatches(
  generate: GenerateFn,
  records: readonly PromptRecord[],
  seeds: number,
  sampleSeed: (i: number, k: number) => number,
  onBatch: (idx: number[], pngs: Uint8Array[]) => Promise<void>,
  onProgress: (done: number) => void,
): Promise<void> {
  const batches = pLimit(2);
  let done = 0;
  const work: Array<Promise<void>> = [];
  for (let start = 0; start < records.length; start += MODEL_BATCH) {
    const idx = Array.from({ length: Math.min(MODEL_BATCH, records.length - start) }, (_, j) => start + j);
    work.push(
      batches(async () => {
        const reqs = idx.flatMap((i) => Array.from({ length: seeds }, (_, k) => ({ prompt: records[i]!.prompt, seed: sampleSeed(i, k) })));
        const pngs = await generate(reqs);
        if (pngs.length !== reqs.length) throw new Error(`generator returned ${pngs.length} images for ${reqs.length} requests`);
        await onBatch(idx, pngs);
        done += idx.length;
        onProgress(done);
      }),
    );
  }
  await Promise.all(work);
}

async function editSource(
  generate: GenerateFn,
  pool: TaskPool,
  tally: Tally,
  o: { prompts: PromptSource; seed: number; count: number; seeds: number; onProgress?: GenrefBuildOptions['onProgress'] },
): Promise<GenrefSample[]> {
  const records = o.prompts(o.count, mixSeed(o.seed, 'genref-edit-prompts'));
  const out: Array<GenrefSample | null> = new Array(records.length * o.seeds).fill(null);
  const sampleSeed = (i: number, k: number): number => mixSeed(o.seed, 'genref-edit-sample', i, k);
  await sampleBatches(generate, records, o.seeds, sampleSeed, async (idx, pngs) => {
    // image n of the batch is seed k = n % seeds of record idx[n / seeds]
    const made = await Promise.all(
      pngs.map((png, n) => {
        const i = idx[Math.floor(n / o.seeds)]!;
        const k = n % o.seeds;
        return pool.run({ type: 'edit', seed: o.seed, index: i * o.seeds + k, sampleSeed: sampleSeed(i, k), record: records[i]!, png: own(png) });
      }),
    );
    made.forEach((m, n) => {
      const i = idx[Math.floor(n / o.seeds)]!;
      if (m.ok) out[i * o.seeds + (n % o.seeds)] = m.sample;
      else tally.drop('edit', m.reason);
    });
  }, (done) => o.onProgress?.('edit', done, records.length));
  return out.filter((s): s is GenrefSample => s !== null);
}

async function refineSource(
  generate: GenerateFn,
  refine: RefineFn,
  pool: TaskPool,
  tally: Tally,
  o: { prompts: PromptSource; seed: number; count: number; onProgress?: GenrefBuildOptions['onProgress'] },
): Promise<GenrefSample[]> {
  const records = o.prompts(o.count, mixSeed(o.seed, 'genref-refine-prompts'));
  const seeds = records.map((_, i) => mixSeed(o.seed, 'genref-refine-sample', i));
  const out: GenrefSample[] = [];
  for (let start = 0; start < records.length; start += MODEL_BATCH * 4) {
    const idx = Array.from({ length: Math.min(MODEL_BATCH * 4, records.length - start) }, (_, j) => start + j);
    const before = await generate(idx.map((i) => ({ prompt: records[i]!.prompt, seed: seeds[i]! })));
    const judged = await Promise.all(before.map((png, j) => pool.run({ type: 'judge', png: own(png), spec: specOf(records[idx[j]!]!) })));
    const todo: Array<{ i: number; j: number; items: string[]; refined: string }> = [];
    for (const [j, i] of idx.entries()) {
      const jb = judged[j]!;
      if (jb.correct) {
        tally.drop('refine', 'original_passes');
        continue;
      }
      const items = planEdits(jb.detections, records[i]!).map(editToText);
      if (!items.length) {
        tally.drop('refine', 'no_reflection');
        continue;
      }
      const refined = await refine(records[i]!.prompt, jb.detections, { text: items.join('\n'), items });
      if (refined.trim() === records[i]!.prompt.trim()) {
        tally.drop('refine', 'prompt_unchanged');
        continue;
      }
      todo.push({ i, j, items, refined });
    }
    const after = todo.length ? await generate(todo.map((t) => ({ prompt: t.refined, seed: seeds[t.i]! }))) : [];
    const judgedAfter = await Promise.all(after.map((png, n) => pool.run({ type: 'judge', png: own(png), spec: specOf(records[todo[n]!.i]!) })));
    todo.forEach((t, n) => {
      const ja = judgedAfter[n]!;
      if (!ja.correct) {
        tally.drop('refine', 'refined_still_fails');
        return;
      }
      const rec = records[t.i]!;
      const jb = judged[t.j]!;
      out.push({
        record: {
          key: buildKey(o.seed, 'refine', t.i),
          source: 'refine',
          prompt: rec.prompt,
          tag: rec.tag,
          spec: specOf(rec),
          reflection: t.items.join('\n'),
          items: t.items,
          flawed: { verdict: false, score: jb.score, reason: jb.reason },
          enhanced: { verdict: true, score: ja.score },
          refinedPrompt: t.refined,
          seedFlawed: seeds[t.i]!,
          seedEnhanced: seeds[t.i]!,
          index: t.i,
        },
        flawed: own(before[t.j]!),
        enhanced: own(after[n]!),
      });
    });
    o.onProgress?.('refine', start + idx.length, records.length);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Source (run): chain steps of finished search runs

export interface ExportOptions {
  out: string;
  shardSize?: number;
  command?: string;
}

const safeKey = (s: string): string => s.replace(/[^A-Za-z0-9_-]/g, '_');

function judgementOf(e: Evaluation): GenrefJudgement {
  return { verdict: e.label ? e.label === 'yes' : e.score >= 0.5, score: e.score, ...(e.label ? { label: e.label } : {}) };
}

function tagOf(run: RunRecord): { tag: string; spec?: PromptSpec } {
  const meta = run.meta;
  const spec = meta && Array.isArray(meta.include) && meta.include.length ? (specOf(meta as unknown as PromptSpec) as PromptSpec) : undefined;
  if (typeof meta?.tag === 'string') return { tag: meta.tag, ...(spec ? { spec } : {}) };
  try {
    return { tag: inferTag(spec ?? parsePrompt(run.prompt)), ...(spec ? { spec } : {}) };
  } catch {
    return { tag: 'unknown', ...(spec ? { spec } : {}) };
  }
}

/**
 * Write every chain step of finished runs as a triplet candidate (source `run`): the parent image (flawed), the
 * reflection the corrector was given, the child image (enhanced), both verifier judgements. The verdicts are kept,
 * not filtered on: a step that made things worse is a triplet with `enhanced.score < flawed.score`. Refuses (a
 * UserError, nothing written) a folder that is not a run directory, a run that is not finished, or one without
 * chain steps (a `noise` run).
 */
export async function exportRunTriplets(runDirs: readonly string[], opts: ExportOptions): Promise<GenrefBuildResult> {
  const shardSize = positiveInt('--shard-size', opts.shardSize ?? DEFAULT_SHARD_SIZE, 1);
  if (!runDirs.length) throw new UserError('no run directory given');
  const runs: Array<{ dir: string; run: RunRecord; steps: Candidate[] }> = [];
  const ids = new Set<string>();
  for (const dir of runDirs) {
    const run = await readRunRecord(dir);
    if (run.status !== 'done') throw new UserError(`${dir}: the run is ${run.status}, not finished (finish it with \`run --resume ${dir}\`)`);
    const steps = run.candidates.filter((c) => c.parentId !== null && c.round > 0);
    if (!steps.length) {
      throw new UserError(`${dir}: the run has no chain steps to export (strategy '${run.params.strategy}'; only noise+prompt and reflection runs refine images)`);
    }
    if (ids.has(run.id)) throw new UserError(`${dir}: run ${run.id} given twice`);
    ids.add(run.id);
    runs.push({ dir, run, steps });
  }
  await prepareOut(opts.out);
  const tally = new Tally();
  const writer = new ShardWriter(opts.out, shardSize);
  let improved = 0;
  let fixed = 0;
  try {
    for (const { dir, run, steps } of runs) {
      const byId = new Map(run.candidates.map((c) => [c.id, c]));
      const { tag, spec } = tagOf(run);
      const readImage = async (id: string): Promise<Uint8Array | null> => {
        try {
          return new Uint8Array(await fs.readFile(path.join(dir, IMAGES_DIR, `${id}.png`)));
        } catch {
          return null;
        }
      };
      for (const child of steps) {
        const parent = byId.get(child.parentId!);
        if (!parent) {
          tally.drop('run', 'missing_parent');
          continue;
        }
        if (!parent.evaluation || !child.evaluation || parent.verifyError || child.verifyError) {
          tally.drop('run', 'unverified');
          continue;
        }
        const [flawed, enhanced] = await Promise.all([readImage(parent.id), readImage(child.id)]);
        if (!flawed || !enhanced) {
          tally.drop('run', 'missing_image');
          continue;
        }
        const items = child.reflection?.items ?? [];
        const record: GenrefRecord = {
          key: `run-${safeKey(run.id)}-${safeKey(child.id)}`,
          source: 'run',
          prompt: run.prompt,
          tag,
          ...(spec ? { spec } : {}),
          reflection: child.reflection?.text ?? '',
          items,
          flawed: judgementOf(parent.evaluation),
          enhanced: judgementOf(child.evaluation),
          ...(child.prompt !== run.prompt ? { refinedPrompt: child.prompt } : {}),
          seedFlawed: parent.seed,
          seedEnhanced: child.seed,
          run: {
            id: run.id,
            strategy: run.params.strategy,
            parentId: parent.id,
            childId: child.id,
            round: child.round,
            chain: child.chain,
            backends: run.backends,
          },
        };
        if (child.evaluation.score > parent.evaluation.score) improved++;
        if (record.enhanced.verdict && !record.flawed.verdict) fixed++;
        tally.add(record);
        await writer.add({ record, flawed, enhanced });
      }
    }
    return await finish(writer, opts.out, (shards) =>
      makeIndex(opts.command ?? '', null, shardSize, shards, tally, [], { runs: runs.map((r) => r.run.id), improved, fixed }),
    );
  } catch (err) {
    await writer.abort();
    throw err;
  }
}
