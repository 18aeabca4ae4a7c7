/**
 * Engine overhead benchmark: a backend whose every call takes a fixed latency (50 ms) and does no work, a
 * concurrency limit of 8 shared by all roles, 64-image runs through the real run store on disk.
 *
 * ideal wall = the schedule's lower bound with zero engine cost: each phase needs ceil(calls / 8) waves of one
 * call latency (pool: generate + verify; chains: width ≤ 8 chains run in parallel, 4 calls per round in sequence).
 * overhead = (wall − ideal) / wall, where the call latency is the mean measured inside the backend (timers fire
 * a little late; that lateness is not the engine's). Also reported: main-thread busy share (event-loop utilisation).
 *
 *   npm run build && node dist/bench/overhead.js [--latency 50] [--concurrency 8] [--repeat 3]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import type { RoleSet } from '../core/roles.js';
import type { SearchParams } from '../core/types.js';
import { runSearch } from '../run.js';
import { numberArg } from './flags.js';

async function fixedLatencyBackend(latency: number, concurrency: number) {
  const image = { png: new Uint8Array(await sharp({ create: { width: 32, height: 32, channels: 3, background: '#888' } }).png().toBuffer()) };
  const measured: number[] = [];
  const group = {};
  const wait = async <T>(value: T): Promise<T> => {
    const t = performance.now();
    await new Promise((r) => setTimeout(r, latency));
    measured.push(performance.now() - t);
    return value;
  };
  let n = 0;
  const base = { name: 'fixed-latency', concurrency, limitGroup: group };
  const roles: RoleSet = {
    generator: { ...base, generate: () => wait(image) },
    corrector: { ...base, correct: () => wait(image) },
    verifier: { ...base, verify: () => wait({ score: (n++ * 7919) % 1000 }) },
    reflector: { ...base, reflect: () => wait({ text: 'Move the star left of the circle', items: ['Move the star left of the circle'] }) },
    refiner: { ...base, refine: (r) => wait(`${r.currentPrompt}, clearly`) },
  };
  return { roles, measured };
}

interface Case {
  name: string;
  params: SearchParams;
  ideal: (latency: number, concurrency: number) => number;
}

const CASES: Case[] = [
  {
    name: 'noise, 64 images',
    params: { strategy: 'noise', samples: 64, width: 1, depth: 0, seed: 1, chainHead: 'latest' },
    ideal: (l, c) => Math.ceil((64 * 2) / c) * l,
  },
  {
    name: 'reflection, pool 32, width 8, depth 4 (64 images)',
    params: { strategy: 'reflection', samples: 32, width: 8, depth: 4, seed: 1, chainHead: 'latest' },
    ideal: (l, c) => Math.ceil((32 * 2) / c) * l + 4 * 4 * Math.ceil(8 / c) * l,
  },
];

async function main(): Promise<void> {
  const latency = numberArg('latency', 50);
  const concurrency = numberArg('concurrency', 8);
  const repeat = numberArg('repeat', 3);
  const out = mkdtempSync(path.join(os.tmpdir(), 'rf-bench-'));
  console.log(`engine overhead: fixed ${latency} ms calls, concurrency ${concurrency}, run store on disk (${out})`);
  try {
    for (const c of CASES) {
      const rows: Array<{ wall: number; ideal: number; busy: number }> = [];
      for (let i = 0; i < repeat; i++) {
        const { roles, measured } = await fixedLatencyBackend(latency, concurrency);
        const elu0 = performance.eventLoopUtilization();
        const t0 = performance.now();
        const outcome = await runSearch({ prompt: 'a star left of a circle', params: c.params, roles, outDir: out, report: false });
        const wall = performance.now() - t0;
        const elu = performance.eventLoopUtilization(elu0);
        if (outcome.imagesGenerated !== 64) throw new Error(`expected 64 images, got ${outcome.imagesGenerated}`);
        const meanLatency = measured.reduce((a, b) => a + b, 0) / measured.length;
        rows.push({ wall, ideal: c.ideal(meanLatency, concurrency), busy: elu.active });
      }
      const best = rows.reduce((a, b) => (a.wall - a.ideal <= b.wall - b.ideal ? a : b));
      const median = rows.map((r) => (r.wall - r.ideal) / r.wall).sort((a, b) => a - b)[Math.floor(rows.length / 2)]!;
      console.log(
        `${c.name}: wall ${best.wall.toFixed(0)} ms, ideal ${best.ideal.toFixed(0)} ms, ` +
          `overhead ${(((best.wall - best.ideal) / best.wall) * 100).toFixed(2)}% (median of ${repeat}: ${(median * 100).toFixed(2)}%), ` +
          `main thread busy ${((best.busy / best.wall) * 100).toFixed(2)}% of wall`,
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

await main();
