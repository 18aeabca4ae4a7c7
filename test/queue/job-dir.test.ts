/** A queue job's folder: taken from a worker on another host whose job the queue gave away, never from a live one here. */
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { JobDirBusy, takeJobDir } from '../../src/queue/job-dir.js';
import { LOCK_FILE, lockRunDir, unlockRunDir } from '../../src/store/run-store.js';
import { tmpDir } from '../helpers/cli.js';

const lockOf = (dir: string): { pid: number; host: string } => JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8'));
const foreign = (dir: string, token = 'f00d'): void =>
  writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid, host: `not-${hostname()}`, token }) + '\n');

describe('queue job folders', () => {
  it('a lock of another host is taken over by the worker the queue gave the job; a run outside the queue still refuses it', () => {
    const dir = tmpDir('jobdir-');
    foreign(dir);
    expect(() => lockRunDir(dir)).toThrow(/in use by process \d+ on not-/);
    const release = takeJobDir(dir);
    expect(lockOf(dir)).toMatchObject({ pid: process.pid, host: hostname() });
    release();
    expect(() => readFileSync(path.join(dir, LOCK_FILE))).toThrow(/ENOENT/);
  });

  it('a live process of this host keeps its folder: the job waits', () => {
    const dir = tmpDir('jobdir-');
    writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ pid: process.ppid, host: hostname(), token: 'beef' }) + '\n');
    expect(() => takeJobDir(dir)).toThrow(JobDirBusy);
    expect(lockOf(dir).pid).toBe(process.ppid);
  });

  it('letting go leaves a lock that another host has taken over since', () => {
    const dir = tmpDir('jobdir-');
    const release = takeJobDir(dir);
    foreign(dir, 'later'); // this worker stalled; the queue gave the job to another host, which took the folder
    release();
    expect(lockOf(dir).host).toBe(`not-${hostname()}`);
    unlockRunDir(dir); // not held any more: nothing to do
    expect(lockOf(dir).host).toBe(`not-${hostname()}`);
  });
});
