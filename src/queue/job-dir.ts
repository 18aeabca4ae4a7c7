import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../core/errors.js';
import { lockRunDir, unlockRunDir } from '../store/run-store.js';

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
    // through the run store's takeover, which removes a dead lock only while it is still the one seen dead
    lockRunDir(abs, { otherHostsStale: true });
  } catch (err) {
    if (err instanceof UserError && / in use by /.test(err.message)) throw new JobDirBusy(err.message);
    throw err;
  }
  return () => unlockRunDir(abs);
}
