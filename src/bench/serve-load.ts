/**
 * Load benchmark of `serve` (127.0.0.1 only, bounded in requests and time): `--requests` images/generations at
 * `--concurrency`, once alone and once while `--aborters` clients keep sending 4-image requests and hanging up
 * after `--abort-ms`. Reports throughput and p50/p95 latency per backend, and what the aborting clients cost the
 * others (target: at most 20 % of throughput).
 *
 * The clients run in a child process (as clients do), so that their own work (connections, aborts) is not done on
 * the server's event loop; the server process's CPU time (all its threads, the models' included) is reported per
 * arm. The two arms run back to back, `--rounds` times in turn (alone, with aborters, alone, …), and the cost is taken
 * from each arm's median throughput: on a shared machine a single pair says little.
 *
 *   npm run build && node dist/bench/serve-load.js [--backends procedural,embedded] [--requests 200]
 *     [--concurrency 16] [--aborters 5] [--abort-ms 100] [--max-seconds 120] [--rounds 1]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createEmbeddedBackend } from '../backends/embedded/backend.js';
import { createProceduralBackend } from '../backends/procedural/index.js';
import type { RoleSet } from '../core/roles.js';
import { startServer } from '../server/server.js';
import { arg, numberArg } from './flags.js';

const PROMPT = 'a photo of a red circle left of a blue square';
/** the aborting clients' seeds start here (the counted clients' are below) */
const ABORTER_SEEDS = 1_000_000;
/** images the server's generator has made for aborting clients */
let aborterImages = 0;

interface Phase {
  done: number;
  /** failed requests of the counted clients, by HTTP status (or `network`) */
  failed: Map<string, number>;
  seconds: number;
  perSecond: number;
  p50: number;
  p95: number;
  aborted: number;
  /** aborting clients' requests that were answered before they hung up */
  answered: number;
  /** CPU seconds of the server process (user + system, every thread) during the phase */
  serverCpu?: number;
  /** CPU seconds of the client process during the phase */
  clientCpu?: number;
  /** images the server made in full for the aborting clients (of 4 per request they sent) */
  aborterImages?: number;
}

interface PhaseJob {
  url: string;
  requests: number;
  concurrency: number;
  aborters: number;
  abortMs: number;
  maxMs: number;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

async function phase({ url, requests, concurrency, aborters, abortMs, maxMs }: PhaseJob): Promise<Phase> {
  const post = (body: unknown, signal?: AbortSignal) =>
    fetch(`${url}/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });
  const started = performance.now();
  const deadline = started + maxMs;
  const latencies: number[] = [];
  let next = 0;
  const failed = new Map<string, number>();
  let aborted = 0;
  let answered = 0;
  let running = true;
  const client = async () => {
    while (running && next < requests && performance.now() < deadline) {
      const seed = next++;
      const t = performance.now();
      const res = await post({ prompt: PROMPT, seed }).catch(() => undefined);
      if (res?.ok) {
        await res.arrayBuffer();
        latencies.push(performance.now() - t);
      } else {
        const why = res ? String(res.status) : 'network';
        failed.set(why, (failed.get(why) ?? 0) + 1);
        await res?.arrayBuffer();
      }
    }
  };
  const aborter = async (k: number) => {
    for (let i = 0; running && performance.now() < deadline; i++) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), abortMs);
      await post({ prompt: PROMPT, n: 4, seed: ABORTER_SEEDS + 1_000 * k + 4 * i }, controller.signal).then(
        async (r) => {
          await r.arrayBuffer();
          answered++;
        },
        () => aborted++,
      );
      clearTimeout(timer);
    }
  };
  const abortLoops = Array.from({ length: aborters }, (_, k) => aborter(k));
  await Promise.all(Array.from({ length: concurrency }, client));
  running = false;
  await Promise.all(abortLoops);
  const seconds = (performance.now() - started) / 1000;
  const sorted = latencies.sort((a, b) => a - b);
  return { done: sorted.length, failed, seconds, perSecond: sorted.length / seconds, p50: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), aborted, answered };
}

/** One phase, its clients in the child process; the server's CPU time meanwhile. */
async function remotePhase(clients: ChildProcess, job: PhaseJob): Promise<Phase> {
  const cpu = process.cpuUsage();
  const images = aborterImages;
  const answer = new Promise<Phase & { failed: Array<[string, number]> }>((resolve, reject) => {
    clients.once('message', (m) => resolve(m as Phase & { failed: Array<[string, number]> }));
    clients.once('exit', (code) => reject(new Error(`the client process exited (${code})`)));
  });
  clients.send(job);
  const p = await answer;
  clients.removeAllListeners('exit');
  const used = process.cpuUsage(cpu);
  return { ...p, failed: new Map(p.failed), serverCpu: (used.user + used.system) / 1e6, aborterImages: aborterImages - images };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

async function main(): Promise<void> {
  const backends = arg('backends', 'procedural,embedded').split(',');
  const requests = numberArg('requests', 200);
  const concurrency = numberArg('concurrency', 16);
  const aborters = numberArg('aborters', 5);
  const abortMs = numberArg('abort-ms', 100);
  const maxMs = numberArg('max-seconds', 120) * 1000;
  const rounds = numberArg('rounds', 1);
  const rows: string[] = [];
  const row = (name: string, label: string, p: Phase) => {
    const failed = [...p.failed].map(([why, n]) => `${n}× ${why}`).join(', ');
    rows.push(
      `| ${name} | ${label} | ${p.done}/${requests}${failed ? ` (failed: ${failed})` : ''} | ${p.perSecond.toFixed(2)} | ${p.p50.toFixed(0)} | ${p.p95.toFixed(0)} | ${p.aborted} | ${p.answered} | ${p.aborterImages} / ${4 * (p.aborted + p.answered)} | ${p.serverCpu!.toFixed(1)} / ${p.clientCpu!.toFixed(1)} / ${p.seconds.toFixed(1)} |`,
    );
  };
  const clients = fork(fileURLToPath(import.meta.url), ['--clients'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  for (const name of backends) {
    const roles: Partial<RoleSet> = name === 'embedded' ? await createEmbeddedBackend() : createProceduralBackend();
    const generator = roles.generator!;
    const generate = generator.generate.bind(generator);
    generator.generate = async (req, opts) => {
      const image = await generate(req, opts);
      if (req.seed >= ABORTER_SEEDS) aborterImages++;
      return image;
    };
    const server = await startServer({ roles, host: '127.0.0.1', port: 0 });
    try {
      const job = { url: server.url, requests, concurrency, aborters: 0, abortMs, maxMs };
      await remotePhase(clients, { ...job, requests: concurrency }); // warm-up
      const alone: number[] = [];
      const withAborts: number[] = [];
      for (let r = 1; r <= rounds; r++) {
        const a = await remotePhase(clients, job);
        row(name, rounds > 1 ? `alone (${r})` : 'alone', a);
        const w = await remotePhase(clients, { ...job, aborters });
        row(name, rounds > 1 ? `${aborters} aborting (${r})` : `${aborters} aborting`, w);
        alone.push(a.perSecond);
        withAborts.push(w.perSecond);
      }
      const cost = 1 - median(withAborts) / median(alone);
      const each = rounds > 1 ? ` (rounds: ${alone.map((a, i) => `${(100 * (1 - withAborts[i]! / a)).toFixed(0)} %`).join(', ')})` : '';
      rows.push(`| ${name} | cost of aborting clients | | ${(100 * cost).toFixed(1)} % ${cost <= 0.2 ? '(≤ 20 %: met)' : '(> 20 %: missed)'}${each} | | | | | | |`);
    } finally {
      await server.close();
    }
  }
  clients.disconnect();
  process.stdout.write(
    [
      `${requests} requests at concurrency ${concurrency}; aborting clients hang up after ${abortMs} ms; ${rounds} round(s) of both arms, cost from the medians`,
      '',
      '| backend | phase | done | requests/s | p50 ms | p95 ms | aborted | answered before the abort | images made for aborters / asked | CPU s: server / clients / wall s |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
    ].join('\n'),
  );
}

if (process.argv.includes('--clients')) {
  // the client process: one phase per message from the bench, until it lets go
  process.on('message', (job: PhaseJob) => {
    const cpu = process.cpuUsage();
    void phase(job).then((p) => {
      const used = process.cpuUsage(cpu);
      process.send!({ ...p, failed: [...p.failed], clientCpu: (used.user + used.system) / 1e6 });
    });
  });
  process.on('disconnect', () => process.exit(0));
} else {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
