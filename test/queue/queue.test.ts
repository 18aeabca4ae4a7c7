import { type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalRedis } from '../../src/queue/local-redis.js';
import { QUEUE_NAME } from '../../src/queue/connection.js';
import { ROOT, cliAsync, cliRun, tmpDir } from '../helpers/cli.js';

// A real redis-server, started here (and stopped after); .ci/run installs it. Missing, the suite fails, it does not skip.
let redis: LocalRedis;
beforeAll(async () => {
  redis = await LocalRedis.start();
});
afterAll(async () => {
  await redis?.close();
});

const EVAL = ['eval', '--split', 'test', '--limit', '1', '--seeds', '1', '--quiet'];

function worker(url: string, stallMs = 1500): Promise<ChildProcess & { log: () => string }> {
  const p = cliAsync(['worker', '--queue', url, '--stall-ms', String(stallMs)]) as ChildProcess & { log: () => string };
  let err = '';
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  p.log = () => err;
  return new Promise((resolve, reject) => {
    const t = setInterval(() => {
      if (err.includes(' ready on ')) (clearInterval(t), resolve(p));
      if (p.exitCode !== null) (clearInterval(t), reject(new Error(`worker exited: ${err}`)));
    }, 50);
  });
}

async function stop(p: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill(signal);
  await exited;
}

/** The results folder an eval wrote into `out`, and what must be the same bit for bit. */
function results(out: string) {
  const dir = path.join(out, readdirSync(out).find((d) => d.startsWith('eval-'))!);
  const res = JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8')) as Record<string, unknown>;
  delete res.wallMs;
  return {
    dir,
    table: readFileSync(path.join(dir, 'table.md'), 'utf8'),
    samples: readFileSync(path.join(dir, 'samples.jsonl'), 'utf8'),
    results: res,
  };
}

const lines = (file: string): number => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0);

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A config whose backend counts its calls into `log`. */
function countedConfig(dir: string, log: string, latencyMs: number): string {
  const file = path.join(dir, `counted-${latencyMs}.json`);
  writeFileSync(file, JSON.stringify({ backend: `module:${path.join(ROOT, 'test/fixtures/counted-procedural.mjs')}`, options: { latencyMs, callLog: log } }));
  return file;
}

describe('eval --queue on a real Redis', () => {
  it('3 workers and 1 worker give the table of a one-process eval, bit for bit', async () => {
    const dir = tmpDir('rf-q-');
    const args = [...EVAL, '--strategies', 'noise,reflection', '--budgets', '1,2,4', '--backend', 'procedural'];
    const one = await cliRun([...args, '--out', path.join(dir, 'one')]);
    expect(one.code, one.stderr).toBe(0);

    const w1 = await worker(`${redis.url}/1`);
    const q1 = await cliRun([...args, '--out', path.join(dir, 'q1'), '--queue', `${redis.url}/1`]);
    await stop(w1);
    expect(q1.code, q1.stderr).toBe(0);

    const ws = await Promise.all([1, 2, 3].map(() => worker(`${redis.url}/2`)));
    const q3 = await cliRun([...args, '--out', path.join(dir, 'q3'), '--queue', `${redis.url}/2`]);
    await Promise.all(ws.map((w) => stop(w)));
    expect(q3.code, q3.stderr).toBe(0);

    const ref = results(path.join(dir, 'one'));
    for (const q of [results(path.join(dir, 'q1')), results(path.join(dir, 'q3'))]) {
      expect(q.table).toBe(ref.table);
      expect(q.samples).toBe(ref.samples);
      expect(q.results).toEqual(ref.results);
    }
    // the jobs really were shared out: the log names who finished each
    const log = readFileSync(path.join(results(path.join(dir, 'q3')).dir, 'queue.log'), 'utf8');
    expect(log.split('\n').filter((l) => l.startsWith('done')).length).toBe(12);
    expect(new Set([...log.matchAll(/, ([^,)]+:\d+)\)/g)].map((m) => m[1])).size).toBeGreaterThan(1);
  }, 180_000);

  it('kill -9 of a worker mid-job loses nothing and repeats no finished call', async () => {
    const dir = tmpDir('rf-q-');
    const args = [...EVAL, '--strategies', 'reflection', '--budgets', '4,8'];
    const refLog = path.join(dir, 'ref.log');
    const ref = await cliRun([...args, '--config', countedConfig(dir, refLog, 0), '--out', path.join(dir, 'one')]);
    expect(ref.code, ref.stderr).toBe(0);
    const n = lines(refLog);

    const qLog = path.join(dir, 'q.log');
    const url = `${redis.url}/3`;
    const a = await worker(url);
    const run = cliRun([...args, '--config', countedConfig(dir, qLog, 40), '--out', path.join(dir, 'q'), '--queue', url]);
    await until('a third of the calls', () => lines(qLog) >= n / 3);
    await stop(a, 'SIGKILL');
    const b = await worker(url);
    const q = await run;
    await stop(b);
    expect(q.code, q.stderr).toBe(0);

    expect(results(path.join(dir, 'q')).table).toBe(results(path.join(dir, 'one')).table);
    expect(results(path.join(dir, 'q')).samples).toBe(results(path.join(dir, 'one')).samples);
    // the killed job was taken over and resumed: only calls in flight at the kill may be made twice
    const log = readFileSync(path.join(results(path.join(dir, 'q')).dir, 'queue.log'), 'utf8');
    expect(log).toMatch(/\(2 attempts/);
    expect(lines(qLog)).toBeGreaterThanOrEqual(n);
    expect(lines(qLog) - n).toBeLessThanOrEqual(4);
  }, 180_000);

  it('Redis restarted mid-eval (empty): the eval finishes with the same table', async () => {
    const dir = tmpDir('rf-q-');
    const args = [...EVAL, '--strategies', 'reflection', '--budgets', '4,8'];
    const refLog = path.join(dir, 'ref.log');
    const ref = await cliRun([...args, '--config', countedConfig(dir, refLog, 0), '--out', path.join(dir, 'one')]);
    expect(ref.code, ref.stderr).toBe(0);
    const n = lines(refLog);

    const qLog = path.join(dir, 'q.log');
    const ws = await Promise.all([1, 2].map(() => worker(redis.url)));
    const run = cliRun([...EVAL.filter((a) => a !== '--quiet'), '--strategies', 'reflection', '--budgets', '4,8', '--config', countedConfig(dir, qLog, 40), '--out', path.join(dir, 'q'), '--queue', redis.url]);
    await until('a third of the calls', () => lines(qLog) >= n / 3);
    await redis.restart();
    const q = await run;
    await Promise.all(ws.map((w) => stop(w)));
    expect(q.code, q.stderr).toBe(0);
    expect(q.stderr).toMatch(/re-added/);
    expect(results(path.join(dir, 'q')).table).toBe(results(path.join(dir, 'one')).table);
    expect(results(path.join(dir, 'q')).samples).toBe(results(path.join(dir, 'one')).samples);
  }, 180_000);

  it('a malformed job fails at once with its reason in the log; the rest go on', async () => {
    const dir = tmpDir('rf-q-');
    const url = `${redis.url}/5`;
    const args = [...EVAL, '--strategies', 'noise,reflection', '--budgets', '1,2', '--backend', 'procedural'];
    const run = cliRun([...args, '--out', path.join(dir, 'q'), '--queue', url]);
    const queue = new Queue(QUEUE_NAME, { connection: { url } });
    try {
      await until('12 waiting jobs', async () => (await queue.getWaitingCount()) === 12);
      const [victim] = await queue.getJobs(['wait'], 0, 0);
      await victim!.updateData({ kind: 'eval', v: 1, budgets: 'all of them' });
      const w = await worker(url);
      const q = await run;
      await stop(w);
      expect(q.code).toBe(3);
      expect(q.stderr.trim().split('\n').at(-1)).toMatch(/^reflectionflow: 1 of 12 jobs failed \(.*malformed job: .*queue\.log/);
      const res = results(path.join(dir, 'q'));
      const log = readFileSync(path.join(res.dir, 'queue.log'), 'utf8');
      expect(log).toMatch(new RegExp(`^failed ${victim!.id} .*\\(1 attempt.*: malformed job: `, 'm'));
      expect(log.split('\n').filter((l) => l.startsWith('done')).length).toBe(11);
      expect(res.samples.trim().split('\n').length).toBe(11 * 2);
      expect(res.table).toMatch(/1 of 12 jobs failed/);
      const failed = await queue.getJob(victim!.id!);
      expect(failed!.attemptsMade).toBe(1); // not retried: it can never run
    } finally {
      await queue.close();
    }
  }, 120_000);

  it('run --prompts --queue: each prompt a job, the batch finished as one process finishes it', async () => {
    const dir = tmpDir('rf-q-');
    const prompts = path.join(dir, 'p.jsonl');
    writeFileSync(
      prompts,
      [
        { tag: 'single_object', include: [{ class: 'circle', count: 1 }], prompt: 'a photo of a circle' },
        { tag: 'two_object', include: [{ class: 'square', count: 1 }, { class: 'star', count: 1 }], prompt: 'a photo of a square and a star' },
        { tag: 'colors', include: [{ class: 'circle', count: 1, color: 'red' }], prompt: 'a photo of a red circle' },
      ].map((r) => JSON.stringify(r)).join('\n') + '\n',
    );
    const args = ['run', '--prompts', prompts, '--backend', 'procedural', '--strategy', 'reflection', '--samples', '4', '--depth', '2', '--no-report', '--json'];
    const one = await cliRun([...args, '--out', path.join(dir, 'one')]);
    expect(one.code, one.stderr).toBe(0);
    const url = `${redis.url}/6`;
    const ws = await Promise.all([1, 2].map(() => worker(url)));
    const q = await cliRun([...args, '--out', path.join(dir, 'q'), '--queue', url]);
    await Promise.all(ws.map((w) => stop(w)));
    expect(q.code, q.stderr).toBe(0);
    const pick = (out: string) => (JSON.parse(out) as Array<{ prompt: string; bestId: string; bestScore: number }>).map((r) => [r.prompt, r.bestId, r.bestScore]);
    expect(pick(q.stdout)).toEqual(pick(one.stdout));
    const batchDir = path.join(dir, 'q', readdirSync(path.join(dir, 'q'))[0]!);
    const batch = JSON.parse(readFileSync(path.join(batchDir, 'batch.json'), 'utf8')) as { prompts: Array<{ status: string; dir: string }> };
    expect(batch.prompts.map((p) => p.status)).toEqual(['done', 'done', 'done']);
    for (const p of batch.prompts) expect(existsSync(path.join(batchDir, p.dir, 'run.json'))).toBe(true);
  }, 120_000);

  it('bad queue input: one line on stderr and exit 2; an unreachable Redis is named', async () => {
    const bad = await cliRun([...EVAL, '--backend', 'procedural', '--queue', 'http://127.0.0.1:6379']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/redis:\/\//);
    const noQueue = await cliRun(['worker']);
    expect(noQueue.code).toBe(2);
    expect(noQueue.stderr.trim()).toBe('reflectionflow: worker needs --queue <redis://host:port>');
    const single = await cliRun(['run', 'a photo of a circle', '--backend', 'procedural', '--queue', redis.url]);
    expect(single.code).toBe(2);
    expect(single.stderr.trim()).toMatch(/--queue runs a batch/);
    const gone = await cliRun(['worker', '--queue', 'redis://127.0.0.1:1']);
    expect(gone.code).toBe(1);
    expect(gone.stderr.trim()).toMatch(/^reflectionflow: cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
  }, 60_000);
});
