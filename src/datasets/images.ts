/**
 * Training data for the embedded models, in the format training/ reads (see training/README.md):
 * meta.json, images.u8 (N×S×S×3), tokens.i32 (N×maxTokens), labels.u8 (verifier sets), records.jsonl.
 */
import { openSync, closeSync, writeSync, writeFileSync } from 'node:fs';
import { makeOutputDir } from '../store/dirs.js';
import path from 'node:path';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { NULL_TOKEN, PAD, Tokenizer } from '../backends/embedded/tokenizer.js';
import { MODEL_SIZE, renderScene } from '../shapeworld/render.js';
import { sceneForSpec, applicableDefects } from '../shapeworld/scene.js';
import { testPrompts, trainPrompts } from '../shapeworld/prompts.js';
import { compositionalTrainPrompts } from '../shapeworld/compositional.js';
import { REGION_PHRASES, sceneLayoutCaption } from '../shapeworld/layout.js';
import { mixSeed, Rng } from '../shapeworld/random.js';
import type { PromptRecord, Tag } from '../shapeworld/rules.js';

/** Words per prompt the generator reads: a layout prompt of four placed objects needs ~28. */
export const MAX_TOKENS = 32;

/**
 * The embedded models' vocabulary: every word of the test prompts, of a large sample of training prompts (all
 * paraphrases, the compositional kinds included) and of the layout wording, sorted, after the two special tokens.
 * Deterministic.
 */
export function shapeWorldVocab(): string[] {
  const tok = new Tokenizer(['<pad>', '<null>'], 1);
  const words = new Set<string>();
  const texts = [
    ...testPrompts().map((r) => r.prompt),
    ...trainPrompts({ count: 100_000, seed: 12345 }).map((r) => r.prompt),
    ...compositionalTrainPrompts(20_000, 12345).map((r) => r.prompt),
    ...REGION_PHRASES.map(([p]) => p),
  ];
  for (const t of texts) for (const w of tok.words(t)) words.add(w);
  const vocab = ['<pad>', '<null>', ...[...words].sort()];
  if (vocab[PAD] !== '<pad>' || vocab[NULL_TOKEN] !== '<null>') throw new Error('special tokens out of place');
  return vocab;
}

/** Category mix of generator training data: position and colour binding are the hard ones, so they come twice. */
export const GENERATOR_TAG_MIX: readonly Tag[] = [
  'single_object',
  'two_object',
  'counting',
  'colors',
  'position',
  'position',
  'color_attr',
  'color_attr',
];

export interface DatasetItem {
  record: PromptRecord;
  png: Uint8Array;
  label?: 0 | 1;
}

export class DatasetWriter {
  private readonly images: number;
  private readonly tokens: number;
  private readonly labels: number | undefined;
  private readonly records: number;
  private count = 0;
  readonly tokenizer: Tokenizer;

  constructor(
    readonly dir: string,
    readonly vocab: string[],
    readonly size: number,
    withLabels: boolean,
  ) {
    makeOutputDir(dir);
    this.tokenizer = new Tokenizer(vocab, MAX_TOKENS);
    this.images = openSync(path.join(dir, 'images.u8'), 'w');
    this.tokens = openSync(path.join(dir, 'tokens.i32'), 'w');
    this.labels = withLabels ? openSync(path.join(dir, 'labels.u8'), 'w') : undefined;
    this.records = openSync(path.join(dir, 'records.jsonl'), 'w');
  }

  async add(item: DatasetItem): Promise<void> {
    const raw = await sharp(Buffer.from(item.png)).removeAlpha().resize(this.size, this.size).raw().toBuffer();
    this.addRaw(item.record, raw, item.label);
  }

  /** One item from raw RGB pixels (size × size × 3), already at the dataset's size. */
  addRaw(record: { tag: string; prompt: string }, raw: Uint8Array, label?: 0 | 1): void {
    if (raw.length !== this.size * this.size * 3) throw new Error(`raw image has ${raw.length} bytes, expected ${this.size}×${this.size}×3`);
    writeSync(this.images, raw);
    writeSync(this.tokens, Buffer.from(new Int32Array(this.tokenizer.encode(record.prompt)).buffer));
    if (this.labels !== undefined) writeSync(this.labels, Buffer.from([label ?? 0]));
    writeSync(this.records, JSON.stringify({ tag: record.tag, prompt: record.prompt, ...(label !== undefined ? { label } : {}) }) + '\n');
    this.count++;
  }

  close(extra: Record<string, unknown> = {}): void {
    for (const fd of [this.images, this.tokens, this.records, this.labels]) if (fd !== undefined) closeSync(fd);
    writeFileSync(
      path.join(this.dir, 'meta.json'),
      JSON.stringify({ count: this.count, size: this.size, vocab: this.vocab, maxTokens: MAX_TOKENS, ...extra }, null, 2) + '\n',
    );
  }
}

export interface GeneratorDataOptions {
  /** share of prompts of the four compositional kinds (compositional.ts; never a check-set spec), default 0 */
  compositional?: number;
  /** share of images captioned with their explicit layout (layout.ts: the refiner's wording), default 0 */
  layout?: number;
  /** the four compositional kinds in equal shares; by default they come as drawn, three objects ~3 % of them */
  balanced?: boolean;
}

/**
 * Correct renders of training prompts: what the generator learns from. With `layout`, that share of the images is
 * captioned by where each object stands ("a red circle at the top left and a blue square on the right"), the
 * wording the embedded refiner writes, so that a refined prompt is one the generator was trained to follow.
 */
export async function writeGeneratorDataset(
  dir: string,
  count: number,
  seed: number,
  onProgress?: (n: number) => void,
  options: GeneratorDataOptions = {},
): Promise<void> {
  const vocab = shapeWorldVocab();
  const nComp = Math.round(count * (options.compositional ?? 0));
  const rng = new Rng(mixSeed(seed, 'gen-mix'));
  const records = rng.shuffle([
    ...trainPrompts({ count: count - nComp, seed, tags: GENERATOR_TAG_MIX }),
    ...compositionalTrainPrompts(nComp, mixSeed(seed, 'gen-compositional'), { balanced: options.balanced ?? false }),
  ]);
  const writer = new DatasetWriter(dir, vocab, MODEL_SIZE, false);
  const limit = pLimit(8);
  const CHUNK = 512;
  let layouts = 0;
  for (let i = 0; i < records.length; i += CHUNK) {
    const chunk = records.slice(i, i + CHUNK);
    const scenes = chunk.map((r, j) => sceneForSpec(r, mixSeed(seed, 'gen', i + j)));
    const pngs = await Promise.all(scenes.map((sc) => limit(() => renderScene(sc))));
    for (let j = 0; j < chunk.length; j++) {
      const record = chunk[j]!;
      const layout = rng.chance(options.layout ?? 0);
      if (layout) layouts++;
      const caption = layout ? { ...record, prompt: sceneLayoutCaption(record, scenes[j]!, rng) } : record;
      await writer.add({ record: caption, png: pngs[j]! });
    }
    onProgress?.(i + chunk.length);
  }
  writer.close({ kind: 'generator', seed, tagMix: GENERATOR_TAG_MIX, compositional: nComp, balanced: options.balanced ?? false, layoutCaptions: layouts });
}

/**
 * Renders for the verifier: half correct, half with one defect each (missing, extra, wrong colour, wrong
 * relation, swapped binding, wrong class), of training prompts; labelled by construction.
 */
export async function writeRenderedVerifierItems(
  writer: DatasetWriter,
  count: number,
  seed: number,
): Promise<void> {
  const items = await renderWithDefects(trainPrompts({ count, seed }), mixSeed(seed, 'verifier-defects'), (i) => mixSeed(seed, 'ver', i));
  for (const item of items) await writer.add(item);
}

/**
 * Renders of `records`, each correct or (half of them, drawn from `defectSeed`) with one defect that breaks it;
 * scene `i` is laid out from `sceneSeed(i)`. Labelled by construction (1 = correct).
 */
export async function renderWithDefects(
  records: readonly PromptRecord[],
  defectSeed: number,
  sceneSeed: (i: number) => number,
): Promise<Array<DatasetItem & { label: 0 | 1 }>> {
  const rng = new Rng(defectSeed);
  const limit = pLimit(8);
  return Promise.all(
    records.map((r, i) =>
      limit(async () => {
        const bad = rng.chance(0.5);
        const defect = bad ? rng.pick(applicableDefects(r)) : null;
        const png = await renderScene(sceneForSpec(r, sceneSeed(i), { defect }));
        return { record: r, png, label: (bad ? 0 : 1) as 0 | 1 };
      }),
    ),
  );
}

/**
 * The verifier's data: the generator's own samples of training prompts, labelled by the evaluator (what the
 * verifier will face at inference), plus rendered correct/defective scenes. Training prompts only.
 */
export async function writeVerifierDataset(
  dir: string,
  opts: {
    generated: number;
    rendered: number;
    seed: number;
    /** share of the generated samples drawn from the compositional kinds' training prompts (default 0) */
    compositional?: number;
    /** those kinds in equal shares (GeneratorDataOptions.balanced) */
    balanced?: boolean;
    generate: (records: PromptRecord[], seeds: number[]) => Promise<Uint8Array[]>;
    judge: (png: Uint8Array, record: PromptRecord) => Promise<boolean>;
    onProgress?: (done: number, total: number, positives: number) => void;
  },
): Promise<{ count: number; positives: number }> {
  const writer = new DatasetWriter(dir, shapeWorldVocab(), MODEL_SIZE, true);
  const nComp = Math.round(opts.generated * (opts.compositional ?? 0));
  const plain = trainPrompts({ count: opts.generated - nComp, seed: mixSeed(opts.seed, 'verifier-generated') });
  // without compositional prompts the list is exactly the earlier one (same seeds, same data)
  const records =
    nComp === 0
      ? plain
      : new Rng(mixSeed(opts.seed, 'verifier-mix')).shuffle([
          ...plain,
          ...compositionalTrainPrompts(nComp, mixSeed(opts.seed, 'verifier-compositional'), { balanced: opts.balanced ?? false }),
        ]);
  let positives = 0;
  const BATCH = 64;
  for (let i = 0; i < records.length; i += BATCH) {
    const chunk = records.slice(i, i + BATCH);
    const seeds = chunk.map((_, j) => mixSeed(opts.seed, 'sample', i + j));
    const pngs = await opts.generate(chunk, seeds);
    for (let j = 0; j < chunk.length; j++) {
      const ok = await opts.judge(pngs[j]!, chunk[j]!);
      if (ok) positives++;
      await writer.add({ record: chunk[j]!, png: pngs[j]!, label: ok ? 1 : 0 });
    }
    opts.onProgress?.(i + chunk.length, records.length, positives);
  }
  await writeRenderedVerifierItems(writer, opts.rendered, mixSeed(opts.seed, 'verifier-rendered'));
  writer.close({
    kind: 'verifier',
    seed: opts.seed,
    generated: opts.generated,
    compositional: nComp,
    balanced: opts.balanced ?? false,
    rendered: opts.rendered,
    generatedPositives: positives,
  });
  return { count: opts.generated + opts.rendered, positives };
}
