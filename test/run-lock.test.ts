/**
 * The run directory's lock under contention: a lock left by a dead process (a kill -9, a power cut) is taken over
 * by exactly one of the processes that try at the same instant (`run --resume DIR` started twice at once). Each
 * contender is its own process (test/fixtures/lock-taker.mjs over the built dist/), since the lock is per process.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { ROOT, tmpDir } from './helpers/cli.js';

const TAKER = path.join(ROOT, 'test/fixtures/lock-taker.mjs');

interface Taker {
  proc: ChildProcessWithoutNullStreams;
  /** the next line it says */
  next(): Promise<string>;
  /** close its stdin (it lets go of what it took by exiting) and wait for it to exit */
  stop(): Promise<void>;
}

function taker(dir: string): Taker {
  const proc = spawn(process.execPath, [TAKER, dir], { stdio: ['pipe', 'pipe', 'pipe'] });
  const said: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: proc.stdout }).on('line', (line) => {
    const w = waiting.shift();
    if (w) w(line);
    else said.push(line);
  });
  const exited = once(proc, 'exit');
  return {
    proc,
    next: () =>
      new Promise<string>((resolve, reject) => {
        if (said.length) return resolve(said.shift()!);
        waiting.push(resolve);
        void exited.then(() => reject(new Error(`lock taker ${proc.pid} exited: ${stderr}`)));
      }),
    async stop() {
      proc.stdin.end();
      await exited;
    },
  };
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const p = spawn('true');
  await once(p, 'exit');
  expect(() => process.kill(p.pid!, 0)).toThrow(/ESRCH/);
  return p.pid!;
}

describe('run lock: a stale lock taken over at once by two processes', () => {
  it('exactly one takes it, every round, and the other is told who holds it (20 rounds)', async () => {
    const dead = await deadPid();
    for (let round = 0; round < 20; round++) {
      const dir = tmpDir('rf-lock-');
      const lock = path.join(dir, '.lock');
      writeFileSync(lock, JSON.stringify({ pid: dead, host: hostname() }) + '\n');
      const takers = [taker(dir), taker(dir)];
      try {
        expect(await Promise.all(takers.map((t) => t.next()))).toEqual(['ready', 'ready']);
        // both spin until the same instant, then take the lock
        const at = Date.now() + 200;
        for (const t of takers) t.proc.stdin.write(`go ${at}\n`);
        const said = await Promise.all(takers.map((t) => t.next()));
        const winners = takers.filter((_, i) => said[i] === 'won');
        expect(winners, `round ${round}: ${said.join(' | ')}`).toHaveLength(1);
        const winner = winners[0]!.proc.pid!;
        expect(said.find((s) => s !== 'won'), `round ${round}`).toMatch(new RegExp(`^lost run .* is in use by process ${winner};`));
        expect(JSON.parse(readFileSync(lock, 'utf8')).pid, `round ${round}`).toBe(winner);
        // the takeover leaves nothing behind but the winner's lock
        expect(readdirSync(dir), `round ${round}`).toEqual(['.lock']);
      } finally {
        await Promise.all(takers.map((t) => t.stop()));
      }
    }
  }, 120_000);
});

describe('run lock: takeovers cut short', () => {
  it('a takeover ticket left by a process that died taking the lock over is passed over, then cleared', async () => {
    const { lockRunDir, unlockRunDir } = await import('../src/store/run-store.js');
    const dead = await deadPid();
    const dir = tmpDir('rf-lock-');
    const lock = path.join(dir, '.lock');
    writeFileSync(lock, JSON.stringify({ pid: dead, host: hostname() }) + '\n');
    // the ticket of that lock (named by the lock file's identity and text) held by the dead process
    const st = statSync(lock);
    const id = createHash('sha256').update(`${st.dev}:${st.ino}:${readFileSync(lock, 'utf8')}`).digest('hex').slice(0, 16);
    writeFileSync(`${lock}.takeover-${id}`, JSON.stringify({ pid: dead, host: hostname() }) + '\n');
    lockRunDir(dir);
    try {
      expect(JSON.parse(readFileSync(lock, 'utf8')).pid).toBe(process.pid);
      expect(readdirSync(dir)).toEqual(['.lock']);
    } finally {
      unlockRunDir(dir);
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a ticket held by a live process means it is taking the lock over: this one leaves the dead lock to it, and gives up after waiting', async () => {
    const { lockRunDir } = await import('../src/store/run-store.js');
    const dead = await deadPid();
    const dir = tmpDir('rf-lock-');
    const lock = path.join(dir, '.lock');
    writeFileSync(lock, JSON.stringify({ pid: dead, host: hostname() }) + '\n');
    const st = statSync(lock);
    const id = createHash('sha256').update(`${st.dev}:${st.ino}:${readFileSync(lock, 'utf8')}`).digest('hex').slice(0, 16);
    const holder = spawn('sleep', ['30']);
    try {
      // a live process holds the ticket and never finishes: the dead lock is left to it, not removed here
      writeFileSync(`${lock}.takeover-${id}`, JSON.stringify({ pid: holder.pid, host: hostname() }) + '\n');
      expect(() => lockRunDir(dir)).toThrow(/another process keeps taking it/);
      expect(JSON.parse(readFileSync(lock, 'utf8')).pid).toBe(dead);
    } finally {
      holder.kill();
    }
  });
});
