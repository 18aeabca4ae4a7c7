/**
 * The folder layout GenEval's own scorer (`evaluation/evaluate_images.py`) reads, so that users of real models score
 * a batch with the official detector and compare with the paper:
 *
 *   <out>/<index:05d>/metadata.jsonl    the prompt's evaluation_metadata.jsonl record, one line
 *   <out>/<index:05d>/samples/0000.png  the search's final image (more samples: 0001.png, …)
 *
 * `index` is the record's position in the prompt file (0-based), as GenEval's generation scripts number them.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { PromptRecord } from '../config/prompts.js';
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
    const png = await sharp(await fs.readFile(file)).png().toBuffer();
    writeFileAtomic(path.join(dir, 'samples', genevalSample(k)), png);
  }
  return dir;
}
