/**
 * Agreement benchmark: renders test-split scenes (half correct, half with exactly one defect), encodes them as PNG,
 * judges them from pixels, and reports how often the pixel verdict equals the ground-truth verdict.
 *
 *   node dist/shapeworld/bench-agreement.js --n 2000 [--seed 1] [--size 48] [--json]
 */
import { pathToFileURL } from 'node:url';
import { evaluateImage } from './evaluate.js';
import { mixSeed, Rng } from './random.js';
import { renderScene, MODEL_SIZE } from './render.js';
import { TAGS, type PromptRecord, type Tag } from './rules.js';
import { applicableDefects, judgeScene, pickDefect, sceneForSpec, type Defect } from './scene.js';
import { testPrompts } from './prompts.js';

export interface AgreementCell {
  agree: number;
  total: number;
  accuracy: number;
}
export interface AgreementReport {
  n: number;
  size: number;
  seed: number;
  overall: AgreementCell;
  byCategory: Record<string, AgreementCell>;
  /** 'correct' for the defect-free half */
  byDefect: Record<string, AgreementCell>;
  disagreements: Array<{ prompt: string; tag: Tag; defect: Defect | null; truth: boolean; judged: boolean; reason: string; seed: number }>;
  seconds: number;
}

export interface AgreementOptions {
  n?: number;
  seed?: number;
  size?: number;
  /** test prompts to draw from (default: the test split) */
  prompts?: readonly PromptRecord[];
  onProgress?: (done: number, total: number) => void;
}

function cell(): AgreementCell {
  return { agree: 0, total: 0, accuracy: 0 };
}

/** Run the agreement benchmark; scenes cycle through the six categories and alternate correct / one defect. */
export async function runAgreementBench(options: AgreementOptions = {}): Promise<AgreementReport> {
  const n = options.n ?? 2000;
  const seed = options.seed ?? 1;
  const size = options.size ?? MODEL_SIZE;
  const prompts = options.prompts ?? testPrompts();
  const byTag = new Map<PromptRecord['tag'], PromptRecord[]>();
  for (const p of prompts) byTag.set(p.tag, [...(byTag.get(p.tag) ?? []), p]);
  const tags = TAGS.filter((t) => byTag.has(t));
  const rng = new Rng(seed);
  const report: AgreementReport = {
    n,
    size,
    seed,
    overall: cell(),
    byCategory: {},
    byDefect: {},
    disagreements: [],
    seconds: 0,
  };
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const tag = tags[i % tags.length] as Tag;
    const list = byTag.get(tag) as PromptRecord[];
    const rec = list[Math.floor(i / tags.length) % list.length] as PromptRecord;
    const withDefect = Math.floor(i / tags.length) % 2 === 1;
    const defect = withDefect ? pickDefect(applicableDefects(rec), rng) : null;
    const sceneSeed = mixSeed(seed, i);
    const scene = sceneForSpec(rec, sceneSeed, { defect });
    const truth = judgeScene(scene, rec).correct;
    const png = await renderScene(scene, size);
    const judged = await evaluateImage(png, rec);
    const agree = judged.correct === truth;
    for (const c of [
      report.overall,
      (report.byCategory[tag] ??= cell()),
      (report.byDefect[defect ?? 'correct'] ??= cell()),
    ]) {
      c.total++;
      if (agree) c.agree++;
    }
    if (!agree && report.disagreements.length < 50) {
      report.disagreements.push({ prompt: rec.prompt, tag, defect, truth, judged: judged.correct, reason: judged.reason, seed: sceneSeed });
    }
    options.onProgress?.(i + 1, n);
  }
  for (const c of [report.overall, ...Object.values(report.byCategory), ...Object.values(report.byDefect)]) {
    c.accuracy = c.total ? c.agree / c.total : 0;
  }
  report.seconds = (performance.now() - t0) / 1000;
  return report;
}

export function formatAgreement(r: AgreementReport): string {
  const pct = (c: AgreementCell): string => `${(100 * c.accuracy).toFixed(2)}% (${c.agree}/${c.total})`;
  const lines = [`ShapeWorld evaluator agreement: ${r.n} scenes at ${r.size} px, seed ${r.seed}, ${r.seconds.toFixed(1)} s`];
  lines.push('by category:');
  for (const [k, c] of Object.entries(r.byCategory)) lines.push(`  ${k.padEnd(16)} ${pct(c)}`);
  lines.push('by scene kind:');
  for (const [k, c] of Object.entries(r.byDefect)) lines.push(`  ${k.padEnd(16)} ${pct(c)}`);
  lines.push(`overall            ${pct(r.overall)}`);
  for (const d of r.disagreements.slice(0, 10)) {
    lines.push(`  disagree: "${d.prompt}" defect=${d.defect ?? 'none'} truth=${d.truth} judged=${d.judged} seed=${d.seed} ${d.reason.replace(/\n/g, '; ')}`);
  }
  return lines.join('\n');
}

function argValue(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  const num = (name: string, dflt: number): number => {
    const v = argValue(argv, name);
    if (v === undefined) return dflt;
    const x = Number(v);
    if (!Number.isInteger(x) || x <= 0) throw new Error(`${name} must be a positive integer, got ${v}`);
    return x;
  };
  const report = await runAgreementBench({ n: num('--n', 2000), seed: num('--seed', 1), size: num('--size', MODEL_SIZE) });
  process.stdout.write((argv.includes('--json') ? JSON.stringify(report, null, 2) : formatAgreement(report)) + '\n');
  return report.overall.accuracy >= 0.995 ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(2);
    },
  );
}
