/**
 * The embedded reflector against the evaluator, on generator samples of the GenEval-Shapes test split (and the
 * compositional check set): for each sample, the evaluator's detections give the true edits (the same planner over
 * what the pixel detector sees); the reflector's edits come from its learned perception.
 *
 *   instruction precision  of the reflector's instructions on failing images, the share the truth also asks for
 *   defect recall          of the true instructions on failing images, the share the reflector writes
 *   silent on passing      of the images the evaluator passes, the share with no instruction
 *   by edit                the same three per kind of instruction (add, remove, replace, move): which kind the
 *                          reflector misses, and which it speaks on passing images
 *   mirror                 position prompts and their mirrored wording: mean |Δ verifier score| on one image, and
 *                          the share of images whose edits match
 *
 *   npm run build && node dist/bench/reflector-agreement.js [--seeds 4] [--steps 12] [--set test|compositional|train]
 *                                                           [--prompts 400 --prompt-seed 5151]  (which training prompts)
 *                                                           [--thresholds 0.5] [--merge same|any,...]
 *                                                           [--no-object 0.5,...] [--class-from reader|map,...]
 *                                                           [--reader-window 1,3,...]
 *                                                           [--sure 0.9,...]  (also: silent when the verifier's P(yes) ≥ it)
 *                                                           [--perception DIR]  (a folder with reflector.onnx/.json)
 *                                                           [--no-flip]  (one look per image, not the image and its mirror)
 *                                                           [--self-noise] [--self-shift]  (also: the evaluator itself as the reader)
 *
 * `--self-noise` adds a table for a second reader: the evaluator itself, on a copy of each image with every pixel
 * value moved by −1, 0 or +1 (of 255, seeded), a change no one can see. It is the ceiling the truth's own
 * instability leaves: how far the evaluator agrees with itself when the image does not really change.
 * `--self-shift` does the same on a copy moved one pixel to the right (the column that enters is background): the
 * same objects, of the same classes and colours, one pixel over; what changes is where the pixel grid cuts them.
 *
 * `--no-object` and `--class-from` apply to a model with a shape reader (reflector.json's `shapeGrid`): drop a
 * reading where the reader's P(no object) is at least the value (above 1: never), and take the class from the reader
 * or from the object map; `--reader-window` averages the reader's logits over that many cells square around a centre.
 *
 * With several --thresholds, --merge, --no-object or --class-from values, the same samples are read under each decoding (the object map is
 * computed once) and one overall row is printed per decoding; the full table is for the first. Choose decodings on
 * `--set train` (training prompts, never the test split), then measure the choice on the test split. A choice made
 * on one set of training prompts flatters it there: compare a later candidate on another (`--prompt-seed`).
 */
import sharp from 'sharp';
import { FlowGenerator } from '../backends/embedded/generator.js';
import { MODELS_DIR } from '../backends/embedded/files.js';
import { decodeObjectMap, DEFAULT_DECODE, Perception, type DecodeOptions } from '../backends/embedded/perception.js';
import { editKey, reflectOn } from '../backends/embedded/reflector.js';
import { canonicalSpec, encodePrompt, encodeSpec } from '../backends/embedded/spec.js';
import { EmbeddedVerifier } from '../backends/embedded/verifier.js';
import { pngToTensor } from '../backends/embedded/image.js';
import { compositionalCheckPrompts } from '../shapeworld/compositional.js';
import { parseEdit, planEdits, type Edit } from '../shapeworld/edits.js';
import { detectObjects } from '../shapeworld/evaluate.js';
import { testPrompts, trainPrompts } from '../shapeworld/prompts.js';
import { mixSeed, mulberry32 } from '../shapeworld/random.js';
import { judge, MIRROR, type PromptRecord, type PromptSpec } from '../shapeworld/rules.js';
import { BACKGROUND } from '../shapeworld/shapes.js';
import { arg, numberArg } from './flags.js';

const keys = (items: readonly string[]): string[] => items.map(parseEdit).filter((e): e is Edit => e !== null).map(editKey);

/** The same scene in the other wording: "A left of B" ⇄ "B right of A". */
function mirrored(spec: PromptSpec): PromptSpec | null {
  const [b, x] = spec.include;
  if (spec.include.length !== 2 || !b || !x?.position) return null;
  const { position, ...subject } = x;
  return { ...spec, include: [subject, { ...b, position: [MIRROR[position[0]], 0] }] };
}

interface Tally { tp: number; written: number; truth: number; found: number; passing: number; silent: number; failing: number }
const tally = (): Tally => ({ tp: 0, written: 0, truth: 0, found: 0, passing: 0, silent: 0, failing: 0 });

function count(x: Tally, correct: boolean, mine: string[], truth: string[]): void {
  if (correct) {
    x.passing++;
    if (mine.length === 0) x.silent++;
  } else {
    x.failing++;
    x.written += mine.length;
    x.tp += mine.filter((k) => truth.includes(k)).length;
    x.truth += truth.length;
    x.found += truth.filter((k) => mine.includes(k)).length;
  }
}

const pct = (a: number, b: number): string => (b ? (a / b).toFixed(3) : '—');

/** A table of instruction precision, defect recall and silence on passing images, one row per labelled tally. */
function printAgreement(first: string, rows: ReadonlyArray<readonly [string, Tally]>): void {
  console.log(`| ${first} | instruction precision | defect recall | silent on passing |`);
  console.log('| --- | ---: | ---: | ---: |');
  for (const [label, t] of rows) console.log(`| ${label} | ${pct(t.tp, t.written)} | ${pct(t.found, t.truth)} | ${pct(t.silent, t.passing)} |`);
}

/** `png` moved one pixel to the right, the background filling the first column. */
async function shiftRight(png: Uint8Array): Promise<Uint8Array> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const out = Buffer.alloc(data.length);
  for (let y = 0; y < info.height; y++) {
    for (let x = 0; x < info.width; x++) {
      const to = (y * info.width + x) * 3;
      if (x === 0) BACKGROUND.forEach((v, c) => (out[to + c] = v));
      else data.copy(out, to, to - 3, to);
    }
  }
  return new Uint8Array(await sharp(out, { raw: info }).png().toBuffer());
}

/** `png` with every channel value moved by −1, 0 or +1 (seeded): the same image to any eye. */
async function jitter(png: Uint8Array, seed: number): Promise<Uint8Array> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const next = mulberry32(seed);
  for (let k = 0; k < data.length; k++) data[k] = Math.min(255, Math.max(0, data[k]! + Math.floor(next() * 3) - 1));
  return new Uint8Array(await sharp(data, { raw: info }).png().toBuffer());
}

/** Every combination of the --thresholds, --merge, --no-object and --class-from values, in the order given. */
function decodingsFromFlags(): DecodeOptions[] {
  const thresholds = arg('thresholds', String(DEFAULT_DECODE.threshold)).split(',').map(Number);
  const merges = arg('merge', DEFAULT_DECODE.mergeAnyClass ? 'any' : 'same').split(',');
  const noObjects = arg('no-object', String(DEFAULT_DECODE.noObject)).split(',').map(Number);
  const classFroms = arg('class-from', DEFAULT_DECODE.classFrom).split(',');
  const windows = arg('reader-window', String(DEFAULT_DECODE.readerWindow)).split(',').map(Number);
  if (classFroms.some((c) => c !== 'reader' && c !== 'map')) throw new Error('--class-from takes reader or map');
  return thresholds.flatMap((threshold) =>
    merges.flatMap((m) =>
      noObjects.flatMap((noObject) =>
        classFroms.flatMap((c) =>
          windows.map((readerWindow) => ({ threshold, mergeAnyClass: m === 'any', noObject, classFrom: c as DecodeOptions['classFrom'], readerWindow })),
        ),
      ),
    ),
  );
}

async function main(): Promise<void> {
  const seeds = numberArg('seeds', 4);
  const set = arg('set', 'test');
  const records: PromptRecord[] =
    set === 'compositional'
      ? compositionalCheckPrompts()
      : set === 'train'
        ? trainPrompts({ count: numberArg('prompts', 400), seed: numberArg('prompt-seed', 5151) })
        : testPrompts();
  const decodings = decodingsFromFlags();
  const alt = decodings.map(() => tally());
  const sures = arg('sure', '').split(',').filter(Boolean).map(Number);
  const gated = sures.map(() => tally());
  const generator = await FlowGenerator.load(MODELS_DIR, { steps: numberArg('steps', 12) });
  const perception = await Perception.load(arg('perception', MODELS_DIR), { flip: !process.argv.includes('--no-flip') });
  const verifier = await EmbeddedVerifier.load(MODELS_DIR);
  const byTag = new Map<string, Tally>();
  const byOp = new Map<string, Tally>(['add', 'remove', 'replace', 'move'].map((op) => [op, tally()]));
  const all = tally();
  // the evaluator as a second reader, on copies of each image that any eye reads alike
  const selfReaders = [
    { flag: '--self-noise', title: 'on a copy with ±1 pixel noise', copy: (png: Uint8Array, s: number, i: number) => jitter(png, mixSeed(1213, s, i)) },
    { flag: '--self-shift', title: 'on a copy moved one pixel to the right', copy: (png: Uint8Array) => shiftRight(png) },
  ]
    .filter((r) => process.argv.includes(r.flag))
    .map((r) => ({ ...r, byTag: new Map<string, Tally>(), all: tally() }));
  let mirrorN = 0;
  let mirrorDiff = 0;
  let mirrorSame = 0;
  const t0 = performance.now();
  for (let s = 0; s < seeds; s++) {
    const images = await generator.sample(records.map((r, i) => ({ tokens: generator.tokenizer.encode(r.prompt), seed: mixSeed(977, s, i) })));
    for (let i = 0; i < records.length; i++) {
      const rec = records[i]!;
      const png = images[i]!.png;
      const truthDets = await detectObjects(png);
      const spec = canonicalSpec(rec);
      const correct = judge(truthDets, rec).correct;
      const truth = planEdits(truthDets, spec).map((e) => editKey(e));
      const pixels = new Float32Array(3 * 32 * 32);
      await pngToTensor({ png }, 32, pixels, 0);
      const [map] = await perception.objectMaps([pixels]);
      const reads = decodings.map((d) => decodeObjectMap(map!, perception.meta.grid, d));
      const seen = reads[0]!;
      const edits = reflectOn(seen, spec).items;
      const mine = keys(edits);
      reads.forEach((r, k) => count(alt[k]!, correct, keys(reflectOn(r, spec).items), truth));
      const t = byTag.get(rec.tag) ?? tally();
      byTag.set(rec.tag, t);
      for (const x of [t, all]) count(x, correct, mine, truth);
      for (const [op, x] of byOp) {
        const ofOp = (ks: string[]): string[] => ks.filter((k) => k.startsWith(`${op} `));
        count(x, correct, ofOp(mine), ofOp(truth));
      }
      for (const r of selfReaders) {
        const again = planEdits(await detectObjects(await r.copy(png, s, i)), spec).map((e) => editKey(e));
        const u = r.byTag.get(rec.tag) ?? tally();
        r.byTag.set(rec.tag, u);
        for (const x of [u, r.all]) count(x, correct, again, truth);
      }
      const mir = mirrored(rec);
      if (!sures.length && !mir) continue;
      // the image's verifier score for its own prompt (and its mirrored wording), in one call
      const [own, other] = await verifier.score([
        { pixels, spec: encodePrompt(rec.prompt) },
        ...(mir ? [{ pixels, spec: encodeSpec(mir) }] : []),
      ]);
      sures.forEach((sure, k) => count(gated[k]!, correct, own! >= sure ? [] : mine, truth));
      if (mir) {
        mirrorN++;
        mirrorDiff += Math.abs(own! - other!);
        if (edits.join('\n') === reflectOn(seen, canonicalSpec(mir)).items.join('\n')) mirrorSame++;
      }
    }
  }
  console.log(`reflector vs evaluator on ${all.passing + all.failing} generator samples (${set} set, ${seeds} seeds per prompt), ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  console.log('| category | images | failing | instruction precision | defect recall | silent on passing |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const [tag, t] of [...byTag, ['overall', all] as const]) {
    console.log(`| ${tag} | ${t.passing + t.failing} | ${t.failing} | ${pct(t.tp, t.written)} | ${pct(t.found, t.truth)} | ${pct(t.silent, t.passing)} |`);
  }
  console.log('\n| edit | written on failing | instruction precision | asked by the truth | defect recall | silent on passing |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const [op, t] of byOp) {
    console.log(`| ${op} | ${t.written} | ${pct(t.tp, t.written)} | ${t.truth} | ${pct(t.found, t.truth)} | ${pct(t.silent, t.passing)} |`);
  }
  for (const r of selfReaders) {
    console.log(`\nthe evaluator itself as the reader, ${r.title}:`);
    printAgreement('category', [...r.byTag, ['overall', r.all]]);
  }
  if (decodings.length > 1) {
    const label = (d: DecodeOptions): string =>
      `threshold ${d.threshold}, merge ${d.mergeAnyClass ? 'any' : 'same'}, no object ${d.noObject}, class from ${d.classFrom}, reader window ${d.readerWindow}`;
    printAgreement('decoding', decodings.map((d, k) => [label(d), alt[k]!]));
  }
  if (sures.length) printAgreement('silent when P(yes) ≥', sures.map((sure, k) => [String(sure), gated[k]!]));
  if (mirrorN) console.log(`mirror: ${mirrorN} position images, mean |Δ verifier score| ${(mirrorDiff / mirrorN).toFixed(4)}, same edits ${pct(mirrorSame, mirrorN)}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
