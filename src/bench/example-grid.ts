/**
 * Example grids for the docs: single samples (budget 1) of test-split prompts from a backend's generator, judged by
 * the ShapeWorld evaluator, split into a grid of passing and one of failing samples, each captioned with its prompt.
 *
 *   npm run build && node dist/bench/example-grid.js --backend embedded --out docs/examples --per-tag 4
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { registerBuiltinBackends } from '../backends/builtin.js';
import { createBackend } from '../backends/registry.js';
import { evaluateImage } from '../shapeworld/evaluate.js';
import { testPrompts } from '../shapeworld/prompts.js';
import { TAGS, type PromptRecord } from '../shapeworld/rules.js';
import { mixSeed } from '../shapeworld/random.js';
import { arg, numberArg } from './flags.js';

const CELL = 128;
const CAPTION = 44;

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** Two caption lines of small text under each image. */
function captionSvg(text: string, width: number): Buffer {
  const words = text.split(' ');
  const lines: string[] = [''];
  for (const w of words) {
    if ((lines.at(-1)! + ' ' + w).trim().length > 21 && lines.length < 3) lines.push(w);
    else lines[lines.length - 1] = (lines.at(-1)! + ' ' + w).trim();
  }
  const tspans = lines
    .slice(0, 3)
    .map((l, i) => `<text x="4" y="${12 + i * 13}" font-family="DejaVu Sans, sans-serif" font-size="11" fill="#111">${esc(l)}</text>`)
    .join('');
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${CAPTION}"><rect width="100%" height="100%" fill="#fff"/>${tspans}</svg>`);
}

async function grid(items: Array<{ png: Uint8Array; prompt: string }>, cols: number, file: string): Promise<void> {
  const rows = Math.max(1, Math.ceil(items.length / cols));
  const composites: sharp.OverlayOptions[] = [];
  for (const [i, it] of items.entries()) {
    const x = (i % cols) * (CELL + 6);
    const y = Math.floor(i / cols) * (CELL + CAPTION + 6);
    composites.push({ input: await sharp(Buffer.from(it.png)).resize(CELL, CELL, { kernel: 'nearest' }).png().toBuffer(), left: x, top: y });
    composites.push({ input: await sharp(captionSvg(it.prompt, CELL)).png().toBuffer(), left: x, top: y + CELL });
  }
  await sharp({ create: { width: cols * (CELL + 6), height: rows * (CELL + CAPTION + 6), channels: 3, background: '#ffffff' } })
    .composite(composites)
    .png()
    .toFile(file);
}

async function main(): Promise<void> {
  registerBuiltinBackends();
  const backend = arg('backend', 'embedded');
  const out = arg('out', 'docs/examples');
  const perTag = numberArg('per-tag', 4);
  const roles = await createBackend(backend, {});
  if (!roles.generator) throw new Error(`backend ${backend} has no generator`);
  const records: PromptRecord[] = [];
  for (const tag of TAGS) records.push(...testPrompts().filter((r) => r.tag === tag).slice(0, 3 * perTag));
  const pass: Array<{ png: Uint8Array; prompt: string; tag: string }> = [];
  const fail: typeof pass = [];
  const samples = await Promise.all(
    records.map(async (r, i) => ({ r, png: (await roles.generator!.generate({ prompt: r.prompt, seed: mixSeed(7, i) })).png })),
  );
  for (const { r, png } of samples) {
    const verdict = await evaluateImage(png, r);
    const bucket = verdict.correct ? pass : fail;
    if (bucket.filter((b) => b.tag === r.tag).length < perTag) bucket.push({ png, prompt: r.prompt.replace(/^a photo of /, ''), tag: r.tag });
  }
  mkdirSync(out, { recursive: true });
  await grid(pass, 6, path.join(out, 'pass.png'));
  await grid(fail, 6, path.join(out, 'fail.png'));
  console.log(`${out}/pass.png: ${pass.length} passing, ${out}/fail.png: ${fail.length} failing single samples (${backend})`);
}

await main();
