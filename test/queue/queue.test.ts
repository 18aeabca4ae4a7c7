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

type Worker = ChildProcess & { log: () => string };

/**
 * A worker, once ready. By default no stall is ever noticed within a test (10 min), so that a loaded machine cannot
 * make a job change hands: only the tests that kill a worker give a short `stallMs`.
 */
function worker(url: string, stallMs = 600_000, extra: string[] = []): Promise<Worker> {
  const p = cliAsync(['worker', '--queue', url, '--stall-ms', String(stallMs), ...extra]) as Worker;
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

/** The eval's jobs still in Redis (none once the enqueuer collected them). */
async function jobsLeft(url: string): Promise<number> {
  const queue = new Queue(QUEUE_NAME, { connection: { url } });
  try {
    return Object.values(await queue.getJobCounts()).reduce((a, b) => a + b, 0);
  } finally {
    await queue.close();
  }
}

/** A config whose backend counts its calls into `log`. */
function countedConfig(dir: string, log: string, latencyMs: number): string {
  const file = path.join(dir, `counted-${latencyMs}.json`);
  writeFileSync(file, JSON.stringify({ backend: `module:${path.join(ROOT, 'test/fixtures/counted-procedural.mjs')}`, options: { latencyMs, callLog: log } }));
  return file;
}

/** The procedural backend with 80 ms per call (a job of slowEval's takes seconds). */
function slowConfig(dir: string): string {
  const file = path.join(dir, 'slow.json');
  writeFileSync(file, JSON.stringify({ backend: 'procedural', options: { latencyMs: 80 } }));
  return file;
}

/** The exit code of a child, once it exited. */
function exited(p: ChildProcess): Promise<number | null> {
  if (p.exitCode !== null) return Promise.resolve(p.exitCode);
  return new Promise((r) => p.once('exit', (code) => r(code)));
}

const SLOW = [...EVAL, '--strategies', 'reflection', '--budgets', '4,8'];

/** Three GenEval records in `<dir>/p.jsonl`. */
function threePrompts(dir: string): string {
  const file = path.join(dir, 'p.jsonl');
  const records = [
    { tag: 'single_object', include: [{ class: 'circle', count: 1 }], prompt: 'a photo of a circle' },
    { tag: 'two_object', include: [{ class: 'square', count: 1 }, { class: 'star', count: 1 }], prompt: 'a photo of a square and a star' },
    { tag: 'colors', include: [{ class: 'circle', count: 1, color: 'red' }], prompt: 'a photo of a red circle' },
  ];
  writeFileSync(file, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

/**
 * A three-job eval (`args`: reflection at budgets 4 and 8) in one process, and a worker that never notices a stall
 * within a test (10 min: only a job finished or put back moves on); `sameAsOneProcess` checks the queued eval
 * written to `<dir>/q`.
 */
async function slowEval(url: string) {
  const dir = tmpDir('rf-q-');
  const args = ['eval', '--prompts', threePrompts(dir), '--seeds', '1', '--quiet', '--strategies', 'reflection', '--budgets', '4,8'];
  const one = await cliRun([...args, '--backend', 'procedural', '--out', path.join(dir, 'one')]);
  expect(one.code, one.stderr).toBe(0);
  const a = await worker(url);
  const sameAsOneProcess = () => {
    expect(results(path.join(dir, 'q')).table).toBe(results(path.join(dir, 'one')).table);
    expect(results(path.join(dir, 'q')).samples).toBe(results(path.join(dir, 'one')).samples);
  };
  return { dir, args, a, sameAsOneProcess };
}

/**
 * The same eval in one process (its calls counted) and on the queue with `workers` fresh workers and 40 ms calls,
 * `disturb`ed once a third of the calls are made; both results, the queue's process and its calls.
 */
async function disturbedEval(url: string, workers: number, disturb: (ws: Worker[]) => Promise<void>, args = SLOW) {
  const dir = tmpDir('rf-q-');
  const refLog = path.join(dir, 'ref.log');
  const ref = await cliRun([...args, '--config', countedConfig(dir, refLog, 0), '--out', path.join(dir, 'one')]);
  expect(ref.code, ref.stderr).toBe(0);
  const n = lines(refLog);
  const qLog = path.join(dir, 'q.log');
  const ws = await Promise.all(Array.from({ length: workers }, () => worker(url, 1500)));
  const run = cliRun([...args, '--config', countedConfig(dir, qLog, 40), '--out', path.join(dir, 'q'), '--queue', url]);
  await until('a third of the calls', () => lines(qLog) >= n / 3);
  await disturb(ws);
  const q = await run;
  return { q, ws, one: results(path.join(dir, 'one')), queued: () => results(path.join(dir, 'q')), refCalls: n, calls: () => lines(qLog) };
}

describe('eval --queue on a real Redis', () => {
  it('3 workers and 1 worker (keeping its journals on its own disk) give the table of a one-process eval, bit for bit; the jobs leave Redis', async () => {
    const dir = tmpDir('rf-q-');
    const args = [...EVAL, '--strategies', 'noise,reflection', '--budgets', '1,2,4'];
    const counted = (name: string) => ['--config', countedConfig(dir, path.join(dir, `${name}.calls`), 0)];
    const one = await cliRun([...args, ...counted('one'), '--out', path.join(dir, 'one')]);
    expect(one.code, one.stderr).toBe(0);

    // a worker that does not share the eval's folder (another machine): its journals stay with it, results go through Redis
    const journal = path.join(dir, 'elsewhere');
    const w1 = await worker(`${redis.url}/1`, undefined, ['--journal', journal]);
    const q1 = await cliRun([...args, ...counted('q1'), '--out', path.join(dir, 'q1'), '--queue', `${redis.url}/1`]);
    await stop(w1);
    expect(q1.code, q1.stderr).toBe(0);
    expect(existsSync(path.join(dir, 'q1', 'queue'))).toBe(false);
    expect(readdirSync(journal)).toHaveLength(6);

    const ws = await Promise.all([1, 2, 3].map(() => worker(`${redis.url}/2`)));
    const q3 = await cliRun([...args, ...counted('q3'), '--out', path.join(dir, 'q3'), '--queue', `${redis.url}/2`]);
    await Promise.all(ws.map((w) => stop(w)));
    expect(q3.code, q3.stderr).toBe(0);

    const ref = results(path.join(dir, 'one'));
    for (const q of [results(path.join(dir, 'q1')), results(path.join(dir, 'q3'))]) {
      expect(q.table).toBe(ref.table);
      expect(q.samples).toBe(ref.samples);
      expect(q.results).toEqual(ref.results);
    }
    // one job per prompt and seed, both strategies on its one noise pool: not one call more than one process makes
    expect(lines(path.join(dir, 'q1.calls'))).toBe(lines(path.join(dir, 'one.calls')));
    expect(lines(path.join(dir, 'q3.calls'))).toBe(lines(path.join(dir, 'one.calls')));
    // the jobs really were shared out
    const log = readFileSync(path.join(results(path.join(dir, 'q3')).dir, 'queue.log'), 'utf8');
    expect(log.split('\n').filter((l) => l.startsWith('done')).length).toBe(6);
    const finishers = new Set([...log.matchAll(/, ([^,)]+:\d+)\)/g)].map((m) => m[1]));
    expect(finishers.size).toBeGreaterThan(1);
    expect(q3.stdout).toContain(`queue: 6/6 jobs done, 0 failed, 0 retried on ${finishers.size} workers\n`);
    // collected and written down: nothing of the eval is left in Redis
    expect(await jobsLeft(`${redis.url}/1`)).toBe(0);
    expect(await jobsLeft(`${redis.url}/2`)).toBe(0);
  }, 180_000);

  it('kill -9 of a worker mid-job loses nothing and repeats no finished call', async () => {
    const later: Worker[] = [];
    const e = await disturbedEval(`${redis.url}/3`, 1, async ([a]) => {
      await stop(a!, 'SIGKILL');
      later.push(await worker(`${redis.url}/3`, 1500));
    });
    await Promise.all(later.map((w) => stop(w)));
    expect(e.q.code, e.q.stderr).toBe(0);
    expect(e.queued().table).toBe(e.one.table);
    expect(e.queued().samples).toBe(e.one.samples);
    // the killed job was taken over and resumed: only calls in flight at the kill may be made twice
    const log = readFileSync(path.join(e.queued().dir, 'queue.log'), 'utf8');
    expect(log).toMatch(/\(2 attempts/);
    expect(e.q.stdout).toMatch(/^queue: 6\/6 jobs done, 0 failed, [1-9]\d* retried on /m); // more when the load stalls a worker
    expect(e.calls()).toBeGreaterThanOrEqual(e.refCalls);
    expect(e.calls() - e.refCalls).toBeLessThanOrEqual(4);
  }, 180_000);

  it('Redis restarted mid-eval (empty): the eval finishes with the same table', async () => {
    const e = await disturbedEval(redis.url, 2, () => redis.restart(), SLOW.filter((a) => a !== '--quiet'));
    await Promise.all(e.ws.map((w) => stop(w)));
    expect(e.q.code, e.q.stderr).toBe(0);
    expect(e.q.stderr).toMatch(/re-added/);
    // progress across workers while it waited
    expect(e.q.stderr).toMatch(/^queue: [0-5]\/6 jobs done, 0 failed, \d running, \d+ retried/m);
    expect(e.queued().table).toBe(e.one.table);
    expect(e.queued().samples).toBe(e.one.samples);
  }, 180_000);

  it('a malformed job fails at once with its reason in the log; the rest go on', async () => {
    const dir = tmpDir('rf-q-');
    const url = `${redis.url}/5`;
    const args = [...EVAL, '--strategies', 'noise,reflection', '--budgets', '1,2', '--backend', 'procedural'];
    const run = cliRun([...args, '--out', path.join(dir, 'q'), '--queue', url]);
    const queue = new Queue(QUEUE_NAME, { connection: { url } });
    try {
      await until('6 waiting jobs', async () => (await queue.getWaitingCount()) === 6);
      const [victim] = await queue.getJobs(['wait'], 0, 0);
      await victim!.updateData({ kind: 'eval', v: 1, budgets: 'all of them' });
      const w = await worker(url);
      const q = await run;
      await stop(w);
      expect(q.code).toBe(3);
      expect(q.stderr.trim().split('\n').at(-1)).toMatch(/^reflectionflow: 1 of 6 jobs failed \(.*malformed job: .*queue\.log/);
      const res = results(path.join(dir, 'q'));
      const log = readFileSync(path.join(res.dir, 'queue.log'), 'utf8');
      expect(log).toMatch(new RegExp(`^failed ${victim!.id} .*\\(1 attempt.*: malformed job: `, 'm'));
      expect(log.split('\n').filter((l) => l.startsWith('done')).length).toBe(5);
      expect(res.samples.trim().split('\n').length).toBe(5 * 2 * 2);
      expect(res.table).toMatch(/1 of 6 jobs failed/);
      expect(q.stdout).toMatch(/^queue: 5\/6 jobs done, 1 failed, 0 retried on 1 worker$/m); // not retried: it can never run
      expect(await jobsLeft(url)).toBe(0);
    } finally {
      await queue.close();
    }
  }, 120_000);

  it('Ctrl-C on a worker finishes its job and takes no other; a second Ctrl-C puts the job back for another worker', async () => {
    const url = `${redis.url}/7`;
    const { dir, args: slow, a, sameAsOneProcess } = await slowEval(url);
    const run = cliRun([...slow, '--config', slowConfig(dir), '--out', path.join(dir, 'q'), '--queue', url]);
    await until('a job on worker a', () => a.log().includes('worker start '));
    a.kill('SIGINT');
    expect(await exited(a)).toBe(0);
    expect(a.log()).toMatch(/^worker stopping: finishing the jobs in hand/m);
    expect(a.log().match(/^worker start /gm)).toHaveLength(1);
    expect(a.log().match(/^worker done /gm)).toHaveLength(1);

    const b = await worker(url);
    await until('a job on worker b', () => b.log().includes('worker start '));
    b.kill('SIGINT');
    await until('b stopping', () => b.log().includes('worker stopping:'));
    b.kill('SIGINT');
    expect(await exited(b)).toBe(130);
    const back = /^worker back  (\S+) /m.exec(b.log());
    expect(back, b.log()).not.toBeNull();
    expect(b.log()).not.toMatch(/^worker done /m);

    const c = await worker(url);
    const q = await run;
    await stop(c);
    expect(q.code, q.stderr).toBe(0);
    sameAsOneProcess();
    const log = readFileSync(path.join(results(path.join(dir, 'q')).dir, 'queue.log'), 'utf8');
    expect(log).toMatch(new RegExp(`^done   ${back![1]} .*\\(2 attempts, [^)]+:${c.pid}\\)$`, 'm'));
    expect(q.stdout).toMatch(/^queue: 3\/3 jobs done, 0 failed, 1 retried on 2 workers$/m);
  }, 180_000);

  it('Ctrl-C on the enqueuer takes the jobs not started off the queue, leaves the running one to its worker; the same command again finishes the eval', async () => {
    const url = `${redis.url}/8`;
    const { dir, args: slow, a, sameAsOneProcess } = await slowEval(url);
    const args = [...slow, '--config', slowConfig(dir), '--out', path.join(dir, 'q'), '--queue', url];
    const enqueuer = cliAsync(args);
    let err = '';
    enqueuer.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    await until('a job on the worker', () => a.log().includes('worker start '));
    enqueuer.kill('SIGINT');
    expect(await exited(enqueuer)).toBe(130);
    expect(err).toMatch(/^stopping… taking the jobs not started off the queue; running ones finish on their workers/m);
    expect(err.trim().split('\n').at(-1)).toMatch(/^reflectionflow: interrupted: 2 jobs taken off the queue, 1 left running on workers, 0 ended; continue with: /);
    expect(readdirSync(path.join(dir, 'q')).filter((d) => d.startsWith('eval-'))).toEqual([]); // nothing half-written
    await until('the running job done', () => a.log().includes('worker done '));
    expect(await jobsLeft(url)).toBe(1); // its result waits in Redis for the enqueuer

    const again = await cliRun(args);
    await stop(a);
    expect(again.code, again.stderr).toBe(0);
    sameAsOneProcess();
    expect(a.log().match(/^worker start /gm)).toHaveLength(3); // each job ran once
    expect(await jobsLeft(url)).toBe(0);
  }, 180_000);

  it('run --prompts --queue: each prompt a job, the batch finished as one process finishes it', async () => {
    const dir = tmpDir('rf-q-');
    const prompts = threePrompts(dir);
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
    expect(await jobsLeft(url)).toBe(0);
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
    const badJournal = await cliRun(['worker', '--queue', redis.url, '--journal', '/dev/null/journals']);
    expect(badJournal.code).toBe(2);
    expect(badJournal.stderr.trim().split('\n')).toEqual(['reflectionflow: --journal folder /dev/null/journals: a part of the path is not a directory']);
    const gone = await cliRun(['worker', '--queue', 'redis://127.0.0.1:1']);
    expect(gone.code).toBe(1);
    expect(gone.stderr.trim()).toMatch(/^reflectionflow: cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
  }, 60_000);
});
