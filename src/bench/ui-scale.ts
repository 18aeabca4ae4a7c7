/**
 * The web view at scale, in headless Chromium (Debian's `chromium`, as the tests):
 *
 * - a folder of 500 runs (one procedural reflection run copied 500 times under new ids): time for GET /api/runs and
 *   for the page to open with its first page of runs listed (fresh navigation each time, median of --repeat);
 * - a run of 1,000 images (procedural, best-of-1000): time until every card is placed, then a scroll from top to
 *   bottom in 300 px steps, one per frame; frame gaps reported (mean, p95, max, frames over 50 ms) and how many
 *   images the browser had loaded (lazy images load near the viewport only).
 *
 *   npm run build && node dist/bench/ui-scale.js [--runs 500] [--images 1000] [--repeat 5]
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { chromium } from 'playwright-core';
import { registerBuiltinBackends } from '../backends/builtin.js';
import { createProceduralBackend } from '../backends/procedural/index.js';
import { runSearch } from '../run.js';
import { RUN_FILE } from '../store/run-store.js';
import { startUi } from '../ui/server.js';
import { numberArg } from './flags.js';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  registerBuiltinBackends();
  const nRuns = numberArg('runs', 500);
  const nImages = numberArg('images', 1000);
  const repeat = numberArg('repeat', 5);
  const root = mkdtempSync(path.join(os.tmpdir(), 'rf-ui-bench-'));
  const many = path.join(root, 'many');
  const big = path.join(root, 'big');
  try {
    const prompt = 'a photo of a red circle left of a blue square';
    const one = await runSearch({
      prompt,
      params: { strategy: 'reflection', samples: 8, width: 2, depth: 4, seed: 0, chainHead: 'latest' },
      roles: createProceduralBackend(),
      outDir: path.join(root, 'seed'),
      report: false,
    });
    const record = JSON.parse(readFileSync(path.join(one.dir, RUN_FILE), 'utf8')) as { id: string; createdAt: string };
    for (let i = 0; i < nRuns; i++) {
      const id = `20260101-${String(100000 + i)}-copy-${i}`;
      cpSync(one.dir, path.join(many, id), { recursive: true });
      writeFileSync(path.join(many, id, RUN_FILE), JSON.stringify({ ...record, id, createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString() }, null, 2));
    }
    let t = performance.now();
    const huge = await runSearch({
      prompt,
      params: { strategy: 'noise', samples: nImages, width: 1, depth: 0, seed: 0, chainHead: 'latest' },
      roles: createProceduralBackend(),
      outDir: big,
      report: false,
    });
    process.stderr.write(`made ${nRuns} runs and a ${nImages}-image run (${((performance.now() - t) / 1000).toFixed(1)} s)\n`);

    const manyUi = await startUi({ runs: many, port: 0 });
    const bigUi = await startUi({ runs: big, port: 0 });
    const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    try {
      const api: number[] = [];
      const open: number[] = [];
      const inPage: number[] = [];
      for (let i = 0; i < repeat; i++) {
        t = performance.now();
        const res = await fetch(`${manyUi.url}api/runs?offset=0&limit=50`);
        const body = (await res.json()) as { total: number };
        api.push(performance.now() - t);
        if (body.total !== nRuns) throw new Error(`listed ${body.total} runs, expected ${nRuns}`);
        const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
        t = performance.now();
        await page.goto(manyUi.url);
        await page.waitForFunction(() => document.querySelectorAll('table.runs tbody tr').length === 50, undefined, { polling: 10 });
        open.push(performance.now() - t);
        // from the navigation's start as the page measures it (without the browser's own tab set-up)
        inPage.push(await page.evaluate(() => performance.now()));
        await page.close();
      }
      process.stdout.write(
        `${nRuns} runs: GET /api/runs (first 50) median ${median(api).toFixed(1)} ms; page open to 50 rows listed median ${median(open).toFixed(0)} ms ` +
          `(max ${Math.max(...open).toFixed(0)} ms; from navigation start, as the page measures it: median ${median(inPage).toFixed(0)} ms; ${repeat} fresh loads)\n`,
      );

      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      t = performance.now();
      await page.goto(`${bigUi.url}#/run/${path.basename(huge.dir)}`);
      await page.waitForFunction((n) => document.querySelectorAll('.pool-grid article.card').length === n && document.querySelector('.run')?.getAttribute('data-stream') === 'ended', nImages, { timeout: 120_000 });
      const placed = performance.now() - t;
      const scroll = await page.evaluate(scrollToBottom);
      const g = [...scroll.gaps].sort((a, b) => a - b);
      // the same scroll over a plain page of the same height, no images: what this machine does at this moment
      const height = await page.evaluate(() => document.documentElement.scrollHeight);
      const plain = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await plain.setContent(`<body style="margin:0"><div style="height:${height}px;background:linear-gradient(#fff,#ccc)"></div></body>`);
      const base = [...(await plain.evaluate(scrollToBottom)).gaps].sort((a, b) => a - b);
      process.stdout.write(
        `${nImages}-image run: all cards placed in ${placed.toFixed(0)} ms; scroll to the bottom (${height} px) in ${g.length} frames: ${gapLine(g)}; ` +
          `${scroll.loaded} of ${nImages} images loaded by the end (lazy)\n` +
          `  the same scroll over a plain page of that height (baseline, this machine now): ${gapLine(base)}\n`,
      );
    } finally {
      await browser.close();
      await manyUi.close();
      await bigUi.close();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function gapLine(g: number[]): string {
  const p95 = g[Math.floor(g.length * 0.95)] ?? 0;
  const mean = g.reduce((a, b) => a + b, 0) / Math.max(1, g.length);
  return `frame gaps mean ${mean.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${(g.at(-1) ?? 0).toFixed(1)} ms, ${g.filter((x) => x > 50).length} over 50 ms`;
}

/** Scroll by 300 px a frame to the bottom; the gaps between frames, and the images loaded by then. */
function scrollToBottom(): Promise<{ gaps: number[]; loaded: number }> {
  return new Promise((resolve) => {
    const gaps: number[] = [];
    let last = performance.now();
    const step = () => {
      const now = performance.now();
      gaps.push(now - last);
      last = now;
      const before = window.scrollY;
      window.scrollBy(0, 300);
      if (window.scrollY === before) {
        const loaded = [...document.querySelectorAll<HTMLImageElement>('.pool-grid img')].filter((i) => i.complete && i.naturalWidth > 0).length;
        resolve({ gaps: gaps.slice(1), loaded });
      } else requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  });
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exitCode = 1;
});
