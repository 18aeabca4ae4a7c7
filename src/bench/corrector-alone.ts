/**
 * The corrector alone: one correction of a flawed generator sample, given the true reflection (the planner's edits
 * over the evaluator's detections) and the refined prompt the embedded refiner writes from them, against a fresh
 * sample at equal cost (one image). Arms, all with the same new seed per image:
 *
 *   corrector         previous image + `refined prompt [Reflexion]: reflection`
 *   no reflection     previous image + refined prompt only (ablation)
 *   no image          a blank image + the full instruction (ablation)
 *   redraw outside    (a corrector that reads an edit region) the whole image drawn anew, not only the region (ablation)
 *   no region         (a corrector that reads an edit region) the full instruction, the region left empty (ablation)
 *   evaluator region  the region grounded on the evaluator's detections instead of the embedded perception's
 *   fresh sample      the generator, original prompt
 *   fresh refined     the generator, refined prompt (one noise+prompt step)
 *
 * Pass = the evaluator's verdict on the original prompt. "kept" is the share of the flawed image's objects that no
 * edit touches and that the corrected image still has (same class and colour, centre within 0.1 of the side).
 *
 * The corrector arm is also broken down by the kinds of edit a case asks for ("move", "add+remove", ...), and
 * `--failures FILE` writes one JSON line per case it fails (prompt, instruction, the evaluator's reason) to read
 * what is left. `--arms a,b` runs those arms only (a quicker comparison of models; `--arms "fresh sample,fresh refined"`
 * compares prompt refinement alone without the corrector's cost).
 *
 *   npm run build && node dist/bench/corrector-alone.js [--set test|compositional|train] [--flawed 200] [--models DIR] [--strength S] [--guidance G] [--steps N] [--failures FILE] [--arms ARM,...]
 */
import { writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { EmbeddedCorrector, type CorrectorMeta } from '../backends/embedded/corrector.js';
import { MODELS_DIR } from '../backends/embedded/files.js';
import { FlowGenerator } from '../backends/embedded/generator.js';
import { readModelCard } from '../backends/embedded/onnx.js';
import { Perception } from '../backends/embedded/perception.js';
import { editRegion } from '../backends/embedded/region.js';
import { compositionalCheckPrompts } from '../shapeworld/compositional.js';
import { answersTo, editToText, planEdits, type Edit } from '../shapeworld/edits.js';
import { detectObjects } from '../shapeworld/evaluate.js';
import { testPrompts, trainPrompts } from '../shapeworld/prompts.js';
import { mixSeed } from '../shapeworld/random.js';
import { refinePrompt } from '../shapeworld/refine.js';
import { canonicalSpec, judge, type Detection, type PromptRecord } from '../shapeworld/rules.js';
import type { Image } from '../core/types.js';
import { arg, numberArg, optionalNumberArg } from './flags.js';

const ALL_ARMS = ['corrector', 'redraw outside', 'no reflection', 'no image', 'no region', 'evaluator region', 'fresh sample', 'fresh refined'] as const;
type Arm = (typeof ALL_ARMS)[number];
const FRESH_ARMS: readonly Arm[] = ['fresh sample', 'fresh refined'];

interface Case {
  rec: PromptRecord;
  flawed: Image;
  dets: Detection[];
  edits: Edit[];
  items: string[];
  refined: string;
  seed: number;
}

/** The kinds of edit a case asks for, e.g. "add-rel+remove" (an Add placed relative to another object is add-rel). */
function editKinds(edits: readonly Edit[]): string {
  const kinds = new Set(edits.map((e) => (e.op === 'add' && e.relation ? 'add-rel' : e.op)));
  return [...kinds].sort().join('+');
}

/** The flawed image's objects that no edit names (by class and, when given, colour). */
function untouched(dets: readonly Detection[], edits: readonly Edit[]): Detection[] {
  const named = edits.flatMap((e) => (e.op === 'add' ? [] : [e.object]));
  return dets.filter((d) => !named.some((o) => answersTo(d, o)));
}

async function main(): Promise<void> {
  const set = arg('set', 'test');
  const want = numberArg('flawed', 200);
  const dir = arg('models', MODELS_DIR);
  const records: PromptRecord[] =
    set === 'compositional' ? compositionalCheckPrompts() : set === 'train' ? trainPrompts({ count: 400, seed: 4242 }) : testPrompts();
  const generator = await FlowGenerator.load(dir);
  const strength = optionalNumberArg('strength');
  const guidance = optionalNumberArg('guidance');
  const steps = optionalNumberArg('steps');
  const sampling = { ...(strength !== undefined ? { strength } : {}), ...(guidance !== undefined ? { guidance } : {}), ...(steps !== undefined ? { steps } : {}) };
  const regional = !!readModelCard<CorrectorMeta>(dir, 'corrector').region;
  const only = process.argv.includes('--arms') ? arg('arms', '').split(',') : undefined;
  for (const a of only ?? []) if (!(ALL_ARMS as readonly string[]).includes(a)) throw new Error(`unknown arm '${a}' (arms: ${ALL_ARMS.join(', ')})`);
  const ARMS = ALL_ARMS.filter((a) => (regional || (a !== 'no region' && a !== 'evaluator region' && a !== 'redraw outside')) && (!only || only.includes(a)));
  if (!ARMS.length) throw new Error(`none of the arms ${only!.join(', ')} applies to this corrector`);
  // the fresh-sample arms need only the generator: the corrector (and the perception its region needs) loads when an arm corrects
  const perception = ARMS.some((a) => !FRESH_ARMS.includes(a)) ? await Perception.load(dir) : undefined;
  const corrector = perception ? await EmbeddedCorrector.load(dir, sampling, perception) : undefined;
  const keeper = ARMS.includes('redraw outside') ? await EmbeddedCorrector.load(dir, { ...sampling, keepOutside: false }, perception) : undefined;
  const blank: Image = { png: new Uint8Array(await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 128, g: 128, b: 128 } } }).png().toBuffer()) };
  const t0 = performance.now();

  // flawed samples: generator images the evaluator fails, round-robin over the prompts
  const cases: Case[] = [];
  for (let round = 0; cases.length < want && round < 16; round++) {
    const imgs = await generator.sample(records.map((r, i) => ({ tokens: generator.tokenizer.encode(r.prompt), seed: mixSeed(31337, round, i) })));
    for (let i = 0; i < records.length && cases.length < want; i++) {
      const rec = records[i]!;
      const dets = await detectObjects(imgs[i]!.png);
      if (judge(dets, rec).correct) continue;
      const spec = canonicalSpec(rec);
      const edits = planEdits(dets, spec);
      if (!edits.length) continue;
      cases.push({ rec, flawed: imgs[i]!, dets, edits, items: edits.map(editToText), refined: refinePrompt(spec, dets, edits), seed: mixSeed(4711, round, i) });
    }
  }

  const pass: Record<Arm, number[]> = Object.fromEntries(ARMS.map((a) => [a, []])) as unknown as Record<Arm, number[]>;
  const byTag = new Map<string, Record<Arm, number[]>>();
  const byKind = new Map<string, number[]>();
  const failures: string[] = [];
  let keptN = 0;
  let keptHave = 0;
  const B = 32;
  for (let s = 0; s < cases.length; s += B) {
    const batch = cases.slice(s, s + B);
    const full = (c: Case) => ({ image: c.flawed, prompt: c.refined, reflection: { text: c.items.join('\n'), items: c.items }, seed: c.seed });
    const run: Record<Arm, () => Promise<Image[]>> = {
      corrector: () => Promise.all(batch.map((c) => corrector!.correct(full(c)))),
      'no reflection': () => Promise.all(batch.map((c) => corrector!.correct({ ...full(c), reflection: { text: '', items: [] } }))),
      'no image': () => Promise.all(batch.map((c) => corrector!.correct({ ...full(c), image: blank }))),
      'redraw outside': () => Promise.all(batch.map((c) => keeper!.correct(full(c)))),
      'no region': () => Promise.all(batch.map((c) => corrector!.draw(full(c), new Float32Array(corrector!.regionPlanes * 32 * 32)))),
      'evaluator region': () => Promise.all(batch.map((c) => corrector!.draw(full(c), editRegion(c.dets, c.items, 32, c.seed, corrector!.regionLayout)))),
      'fresh sample': () => generator.sample(batch.map((c) => ({ tokens: generator.tokenizer.encode(c.rec.prompt), seed: c.seed }))),
      'fresh refined': () => generator.sample(batch.map((c) => ({ tokens: generator.tokenizer.encode(c.refined), seed: c.seed }))),
    };
    const outs: Partial<Record<Arm, Image[]>> = {};
    for (const arm of ARMS) outs[arm] = await run[arm]();
    for (const [j, c] of batch.entries()) {
      const t = byTag.get(c.rec.tag) ?? (Object.fromEntries(ARMS.map((a) => [a, []])) as unknown as Record<Arm, number[]>);
      byTag.set(c.rec.tag, t);
      for (const arm of ARMS) {
        const dets = await detectObjects(outs[arm]![j]!.png);
        const ok = judge(dets, c.rec).correct ? 1 : 0;
        pass[arm].push(ok);
        t[arm].push(ok);
        if (arm === 'corrector') {
          const kind = editKinds(c.edits);
          byKind.set(kind, [...(byKind.get(kind) ?? []), ok]);
          if (!ok) failures.push(JSON.stringify({ tag: c.rec.tag, prompt: c.rec.prompt, kinds: kind, instruction: `${c.refined} [Reflexion]: ${c.items.join('\n')}`, reason: judge(dets, c.rec).reason }));
          for (const d of untouched(c.dets, c.edits)) {
            keptN++;
            if (dets.some((e) => e.shape === d.shape && e.color === d.color && Math.hypot(e.cx - d.cx, e.cy - d.cy) < 0.1)) keptHave++;
          }
        }
      }
    }
  }
  const rate = (xs: number[]): string => (xs.length ? (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(3) : '—');
  const correcting = corrector ? `, corrector ${corrector.meta.cond}, ${corrector.steps} steps, strength ${corrector.strength}, guidance ${corrector.guidance}` : '';
  console.log(`corrector alone, set ${set}: ${cases.length} flawed generator samples (${dir}${correcting})`);
  console.log(`| category | n | ${ARMS.join(' | ')} |`);
  console.log(`|---|---|${ARMS.map(() => '---').join('|')}|`);
  for (const [tag, t] of [...byTag].sort(([a], [b]) => a.localeCompare(b))) {
    console.log(`| ${tag} | ${t[ARMS[0]!].length} | ${ARMS.map((a) => rate(t[a])).join(' | ')} |`);
  }
  console.log(`| all | ${cases.length} | ${ARMS.map((a) => rate(pass[a])).join(' | ')} |`);
  if (ARMS.includes('corrector')) {
    console.log(`\ncorrector by the edits asked for:\n| edits | n | corrector |\n|---|---|---|`);
    for (const [kind, xs] of [...byKind].sort(([, a], [, b]) => b.length - a.length)) console.log(`| ${kind} | ${xs.length} | ${rate(xs)} |`);
    console.log(`kept: ${keptN ? (keptHave / keptN).toFixed(3) : '—'} of ${keptN} untouched objects still in place after the correction`);
  }
  const failuresFile = process.argv.includes('--failures') ? arg('failures', '') : '';
  if (failuresFile) writeFileSync(failuresFile, failures.map((l) => `${l}\n`).join(''));
  console.log(`wall ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
