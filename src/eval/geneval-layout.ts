/**
 * The folder layout GenEval's own scorer (`evaluation/evaluate_images.py`) reads, so that users of real models score
 * a batch with the official detector and compare with the paper:
 *
 *   <out>/<index:05d>/metadata.jsonl    the prompt's evaluation_metadata.jsonl record, one line
 *   <out>/<index:05d>/samples/0000.png  the search's final image (more samples: 0001.png, …)
 *
 * `index` is the record's position in the prompt file (0-based), as GenEval's generation scripts number them.
 *
 * Budget rungs (as the official ReflectionFlow `verifier_filter.py` picks for nfe 1…32): rung n is the best image,
 * by the search's own ranking, among the first n images it generated (the pool by index, then round by round), each
 * rung a GenEval tree of its own, `<out>/nfe<n>/<index:05d>/…`, which the official scorer reads like the top level.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { PromptRecord } from '../config/prompts.js';
import type { Candidate } from '../core/types.js';
import { UserError } from '../core/errors.js';
import { rank } from '../search/select.js';
import { writeFileAtomic } from '../store/atomic.js';
import { makeOutputDir } from '../store/dirs.js';

export const genevalFolder = (index: number): string => String(index).padStart(5, '0');
export const genevalSample = (k: number): string => `${String(k).padStart(4, '0')}.png`;

/** Write prompt `index`'s folder: its record and its sample images (PNG files, converted to PNG when needed). */
export async function writeGenevalPrompt(out: string, index: number, record: PromptRecord, samples: readonly string[]): Promise<string> {
  const dir = path.join(out, genevalFolder(index));
  makeOutputDir(path.join(dir, 'samples'), '--geneval-out folder');
  writeFileAtomic(path.join(dir, 'metadata.jsonl'), JSON.stringify(record) + '\n');
  for (const [k, file] of samples.entries()) {
    const { default: sharp } = await import('sharp'); // not for the runs that write no GenEval tree
    const png = await sharp(await fs.readFile(file)).png().toBuffer();
    writeFileAtomic(path.join(dir, 'samples', genevalSample(k)), png);
  }
  return dir;
}

export const rungFolder = (n: number): string => `nfe${n}`;

/** Refuses rungs above the images a search may generate (`budget`), before anything runs. */
export function checkRungs(rungs: readonly number[], budget: number): void {
  const over = rungs.filter((n) => n > budget);
  if (over.length) throw new UserError(`--geneval-rungs ${over.join(',')}: above the ${budget} images each search may generate`);
}

/**
 * Each rung's image: the best of the first n candidates in plan order (a search that stopped early gives every
 * larger rung its best of all).
 */
export function rungChoices(candidates: readonly Candidate[], rungs: readonly number[]): Array<{ rung: number; id: string }> {
  if (!candidates.length) return [];
  return rungs.map((rung) => ({ rung, id: rank(candidates.slice(0, rung))[0]!.id }));
}
