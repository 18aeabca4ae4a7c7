/**
 * Load benchmark of `serve` (127.0.0.1 only, bounded in requests and time): `--requests` images/generations at
 * `--concurrency`, once alone and once while `--aborters` clients keep sending 4-image requests and hanging up
 * after `--abort-ms`. Reports throughput and p50/p95 latency per backend, and what the aborting clients cost the
 * others (target: at most 20 % of throughput).
 *
 *   npm run build && node dist/server/load-bench.js [--backends procedural,embedded] [--requests 200]
 *     [--concurrency 16] [--aborters 5] [--abort-ms 100] [--max-seconds 120]
 */
import { performance } from 'node:perf_hooks';
import { createEmbeddedBackend } from '../backends/embedded/backend.js';
import { createProceduralBackend } from '../backends/procedural/index.js';
import type { RoleSet } from '../core/roles.js';
import { startServer } from './server.js';

const PROMPT = 'a photo of a red circle left of a blue square';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}
const num = (name: string, fallback: number) => Number(arg(name, String(fallback)));

interface Phase {
  done: number;
  failed: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p95: number;
  aborted: number;
  /** aborting clients' requests that were answered before they hung up */
  answered: number;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

async function phase(url: string, requests: number, concurrency: number, aborters: number, abortMs: number, maxMs: number): Promise<Phase> {
  const post = (body: unknown, signal?: AbortSignal) =>
    fetch(`${url}/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });
  const started = performance.now();
  const deadline = started + maxMs;
  const latencies: number[] = [];
  let next = 0;
  let failed = 0;
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
        failed++;
        await res?.arrayBuffer();
      }
    }
  };
  const aborter = async (k: number) => {
    for (let i = 0; running && performance.now() < deadline; i++) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), abortMs);
      await post({ prompt: PROMPT, n: 4, seed: 1_000_000 + 1_000 * k + 4 * i }, controller.signal).then(
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

async function main(): Promise<void> {
  const backends = arg('backends', 'procedural,embedded').split(',');
  const requests = num('requests', 200);
  const concurrency = num('concurrency', 16);
  const aborters = num('aborters', 5);
  const abortMs = num('abort-ms', 100);
  const maxMs = num('max-seconds', 120) * 1000;
  const rows: string[] = [];
  for (const name of backends) {
    const roles: Partial<RoleSet> = name === 'embedded' ? await createEmbeddedBackend() : createProceduralBackend();
    const server = await startServer({ roles, host: '127.0.0.1', port: 0 });
    try {
      await phase(server.url, concurrency, concurrency, 0, abortMs, maxMs); // warm-up
      const alone = await phase(server.url, requests, concurrency, 0, abortMs, maxMs);
      const withAborts = await phase(server.url, requests, concurrency, aborters, abortMs, maxMs);
      for (const [label, p] of [['alone', alone], [`${aborters} aborting`, withAborts]] as const) {
        rows.push(
          `| ${name} | ${label} | ${p.done}/${requests}${p.failed ? ` (${p.failed} failed)` : ''} | ${p.perSecond.toFixed(2)} | ${p.p50.toFixed(0)} | ${p.p95.toFixed(0)} | ${p.aborted} | ${p.answered} |`,
        );
      }
      const cost = 1 - withAborts.perSecond / alone.perSecond;
      rows.push(`| ${name} | cost of aborting clients | | ${(100 * cost).toFixed(1)} % ${cost <= 0.2 ? '(≤ 20 %: met)' : '(> 20 %: missed)'} | | | | |`);
    } finally {
      await server.close();
    }
  }
  process.stdout.write(
    [`${requests} requests at concurrency ${concurrency}; aborting clients hang up after ${abortMs} ms`, '', '| backend | phase | done | requests/s | p50 ms | p95 ms | aborted | answered before the abort |', '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |', ...rows, ''].join('\n'),
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
