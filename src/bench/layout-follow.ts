/**
 * Does the generator draw what the embedded refiner writes? Training prompts only (240 of GenEval's six categories,
 * 160 of the four compositional kinds, 40 of each), per category, the evaluator's pass rate of one generator sample
 * each:
 *
 *   original            the prompt as written
 *   layout              the refiner's layout wording of the prompt, nothing seen yet (the first refinement)
 *   fresh after fail    for each failing `original` sample: a new seed, the prompt as written
 *   layout after fail   the same new seed, the layout with nothing seen
 *   refined after fail  the same new seed, the refined prompt of the failing sample (its objects kept where they
 *                       are, the edits the evaluator's detections call for): one `noise+prompt` step
 *
 * The last three compare equal cost on the prompts the generator found hard; `noise+prompt` gains over best-of-N
 * only where "refined after fail" beats "fresh after fail".
 *
 *   npm run build && node dist/bench/layout-follow.js [--models DIR] [--seeds 2]
 */
import { FlowGenerator } from '../backends/embedded/generator.js';
import { MODELS_DIR } from '../backends/embedded/files.js';
import { canonicalSpec } from '../backends/embedded/spec.js';
import type { Image } from '../core/types.js';
import { compositionalTrainPrompts } from '../shapeworld/compositional.js';
import { planEdits } from '../shapeworld/edits.js';
import { evaluateImage } from '../shapeworld/evaluate.js';
import { trainPrompts } from '../shapeworld/prompts.js';
import { mixSeed } from '../shapeworld/random.js';
import { refinePrompt } from '../shapeworld/refine.js';
import type { PromptRecord } from '../shapeworld/rules.js';
import { arg, numberArg } from './flags.js';

const ARMS = ['original', 'layout', 'fresh after fail', 'layout after fail', 'refined after fail'] as const;
type Arm = (typeof ARMS)[number];

async function main(): Promise<void> {
  const dir = arg('models', MODELS_DIR);
  const seeds = numberArg('seeds', 2);
  const records: PromptRecord[] = [...trainPrompts({ count: 240, seed: 4242 }), ...compositionalTrainPrompts(160, 4243, { balanced: true })];
  const generator = await FlowGenerator.load(dir, { steps: 12 });
  const sample = (jobs: Array<{ prompt: string; seed: number }>): Promise<Image[]> =>
    generator.sample(jobs.map((j) => ({ tokens: generator.tokenizer.encode(j.prompt), seed: j.seed })));
  const tally = new Map<string, Partial<Record<Arm, [number, number]>>>();
  const add = (rec: PromptRecord, arm: Arm, ok: boolean): void => {
    for (const tag of [rec.tag, 'all']) {
      const t = tally.get(tag) ?? {};
      tally.set(tag, t);
      const cell = (t[arm] ??= [0, 0]);
      cell[0] += ok ? 1 : 0;
      cell[1]++;
    }
  };
  const specs = records.map((r) => canonicalSpec(r));
  const layouts = specs.map((spec) => refinePrompt(spec, [], planEdits([], spec)));
  const t0 = performance.now();
  for (let s = 0; s < seeds; s++) {
    const originals = await sample(records.map((r, k) => ({ prompt: r.prompt, seed: mixSeed(515, s, k) })));
    const laidOut = await sample(layouts.map((prompt, k) => ({ prompt, seed: mixSeed(616, s, k) })));
    const failed: Array<{ k: number; refined: string }> = [];
    for (const [k, rec] of records.entries()) {
      const { correct, detections } = await evaluateImage(originals[k]!.png, rec);
      add(rec, 'original', correct);
      add(rec, 'layout', (await evaluateImage(laidOut[k]!.png, rec)).correct);
      if (!correct) failed.push({ k, refined: refinePrompt(specs[k]!, detections, planEdits(detections, specs[k]!)) });
    }
    const seedOf = (k: number): number => mixSeed(717, s, k);
    const after: Array<[Arm, Image[]]> = [
      ['fresh after fail', await sample(failed.map((f) => ({ prompt: records[f.k]!.prompt, seed: seedOf(f.k) })))],
      ['layout after fail', await sample(failed.map((f) => ({ prompt: layouts[f.k]!, seed: seedOf(f.k) })))],
      ['refined after fail', await sample(failed.map((f) => ({ prompt: f.refined, seed: seedOf(f.k) })))],
    ];
    for (const [arm, images] of after) {
      for (const [j, f] of failed.entries()) add(records[f.k]!, arm, (await evaluateImage(images[j]!.png, records[f.k]!)).correct);
    }
  }
  console.log(`${dir}: ${records.length} training prompts × ${seeds} seeds, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  console.log(`| category | ${ARMS.join(' | ')} |`);
  console.log(`| --- |${ARMS.map(() => ' ---: |').join('')}`);
  const rows = [...tally].sort(([a], [b]) => Number(a === 'all') - Number(b === 'all') || a.localeCompare(b));
  for (const [tag, t] of rows) {
    const cell = (arm: Arm): string => {
      const c = t[arm];
      return c ? `${(c[0] / c[1]).toFixed(3)} (${c[1]})` : '—';
    };
    console.log(`| ${tag} | ${ARMS.map(cell).join(' | ')} |`);
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
