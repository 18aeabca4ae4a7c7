/**
 * Queue throughput: one eval's jobs run by 1, 2 and 4 `reflectionflow worker` processes on a throwaway
 * redis-server, on two workloads:
 *
 * - io:  the procedural backend with a fixed latency per call (`latencyMs`, a remote-like service): the workers
 *        mostly wait, so throughput should grow with workers.
 * - cpu: the embedded ONNX models: the workers compute on the machine's cores, so throughput stops growing at the
 *        core count (and ONNX already uses more than one thread per worker).
 *
 * Workers start (and load their models on a warm-up job) before the clock starts; each run uses its own Redis
 * database, so no job is found done from an earlier run. Bounded: a fixed job count, and --deadline seconds.
 *
 *   npm run build && node dist/bench/queue-throughput.js [--latency 50] [--io-limit 2] [--cpu-limit 1] [--deadline 600]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConfigFile } from '../config/schema.js';
import { dispatch } from '../queue/dispatch.js';
import { evalJobs } from '../queue/eval-jobs.js';
import { LocalRedis } from '../queue/local-redis.js';
import { testPrompts } from '../shapeworld/prompts.js';
import type { PromptRecord } from '../config/prompts.js';
import { numberArg } from './flags.js';

const BIN = fileURLToPath(new URL('../../bin/reflectionflow.js', import.meta.url));

function firstPerTag(n: number, salt: string): PromptRecord[] {
  const seen = new Map<string, number>();
  return (testPrompts() as PromptRecord[])
    .filter((r) => {
      const k = (seen.get(r.tag) ?? 0) + 1;
      seen.set(r.tag, k);
      return k <= n;
    })
    .map((r) => ({ ...r, bench: salt }));
}

function startWorker(url: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, [BIN, 'worker', '--queue', url, '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const t = setInterval(() => {
      if (err.includes(' ready on ')) (clearInterval(t), resolve(p));
      if (p.exitCode !== null) (clearInterval(t), reject(new Error(`worker exited: ${err}`)));
    }, 50);
  });
}

async function stopWorker(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await exited;
}

interface Workload {
  name: string;
  config: ConfigFile;
  records: number;
  budgets: number[];
}

async function measure(redis: LocalRedis, db: number, w: Workload, workers: number, work: string): Promise<{ jobs: number; seconds: number }> {
  const url = `${redis.url}/${db}`;
  const procs = await Promise.all(Array.from({ length: workers }, () => startWorker(url)));
  try {
    const job = (salt: string, n: number) =>
      evalJobs({
        records: firstPerTag(n, salt),
        seedsPerPrompt: () => 1,
        seed: 0,
        arms: [{ label: 'noise', strategy: 'noise', oracle: false }],
        stopAt: [],
        budgets: w.budgets,
        width: 2,
        chainHead: 'latest',
        verifierAuc: false,
        config: w.config,
        work,
      });
    // warm-up: one job per worker loads its backends (the embedded models take seconds)
    await dispatch(url, job(`warm-${workers}`, 1).slice(0, workers));
    const jobs = job(`run-${workers}`, w.records);
    const t0 = performance.now();
    const out = await dispatch(url, jobs);
    const seconds = (performance.now() - t0) / 1000;
    const failed = out.outcomes.filter((o) => o.error);
    if (failed.length) throw new Error(`${failed.length} jobs failed: ${failed[0]!.error}`);
    return { jobs: jobs.length, seconds };
  } finally {
    await Promise.all(procs.map(stopWorker));
  }
}

async function main(): Promise<void> {
  const deadline = Date.now() + numberArg('deadline', 600) * 1000;
  const latency = numberArg('latency', 50);
  const workloads: Workload[] = [
    { name: `io (procedural, ${latency} ms per call)`, config: { backend: 'procedural', options: { latencyMs: latency } }, records: numberArg('io-limit', 2), budgets: [8] },
    { name: 'cpu (embedded models)', config: {}, records: numberArg('cpu-limit', 1), budgets: [4] },
  ];
  const redis = await LocalRedis.start();
  const work = mkdtempSync(path.join(os.tmpdir(), 'rf-bench-queue-'));
  let db = 0;
  try {
    for (const w of workloads) {
      const base: { rate?: number } = {};
      for (const n of [1, 2, 4]) {
        if (Date.now() > deadline) {
          console.log(`${w.name}: deadline reached, ${n} workers skipped`);
          break;
        }
        const r = await measure(redis, db++, w, n, work);
        const rate = r.jobs / r.seconds;
        base.rate ??= rate;
        console.log(`${w.name}: ${n} worker${n === 1 ? ' ' : 's'}  ${r.jobs} jobs in ${r.seconds.toFixed(2)} s  ${rate.toFixed(2)} jobs/s  ×${(rate / base.rate).toFixed(2)}`);
      }
    }
  } finally {
    await redis.close();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
