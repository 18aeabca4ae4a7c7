import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { UserError } from '../core/errors.js';
import { LOCK_FILE, lockRunDir, unlockRunDir } from '../store/run-store.js';

/** Another live process on this host works in the job's folder: the job waits, it has not failed. */
export class JobDirBusy extends Error {}

/**
 * Take a job's folder for this process. The queue gave us the job, so the lock of a process on another host is
 * stale (its queue lock expired: it died or lost Redis) and is taken over; on this host the run store's lock rule
 * decides (a live process keeps it).
 */
export function takeJobDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const abs = path.resolve(dir);
  try {
    const owner = JSON.parse(readFileSync(path.join(abs, LOCK_FILE), 'utf8')) as { host?: unknown };
    if (owner.host !== hostname()) rmSync(path.join(abs, LOCK_FILE), { force: true });
  } catch {
    // no lock, or a torn one: lockRunDir handles both
  }
  try {
    lockRunDir(abs);
  } catch (err) {
    if (err instanceof UserError && / in use by /.test(err.message)) throw new JobDirBusy(err.message);
    throw err;
  }
  return () => unlockRunDir(abs);
}
