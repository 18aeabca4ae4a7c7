import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Write a file so that readers, and a process resumed after a kill, see the old content or the new one, never a
 * part: temp file, then rename. No fsync: a killed process loses nothing the kernel has; after a power loss the
 * last few images may be missing, and resume redoes their calls (their events name images that fail to load).
 *
 * Synchronous on purpose: run files and images are small, and four thread-pool round trips per image put more
 * latency on a chain's critical path than the microseconds of blocking (see the overhead benchmark).
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
