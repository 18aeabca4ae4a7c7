import { mkdirSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { UserError, errorMessage } from '../core/errors.js';
import type { PromptRecord } from '../core/prompt-record.js';
import type { SearchParams } from '../core/types.js';
import { writeFileAtomic } from './atomic.js';
import { makeOutputDir } from './dirs.js';
import { lockRunDir, newRunId, unlockRunDir } from './run-store.js';
import type { RunStatus } from './types.js';

export const BATCH_FILE = 'batch.json';

/** batch.json: the prompts of one `run --prompts` and where each one's run is. */
export interface BatchRecord {
  version: 1;
  kind: 'batch';
  id: string;
  /** the prompt file as given */
  source: string;
  createdAt: string;
  updatedAt: string;
  params: SearchParams;
  /** the configuration with secrets removed (what a resume builds its roles from) */
  config: unknown;
  size?: number;
  prompts: Array<{ prompt: string; record?: PromptRecord; dir: string | null; status: RunStatus | 'pending' }>;
}

/**
 * A batch directory: `batch.json` (rewritten atomically) and one run directory per prompt started, inside it. A
 * batch killed at any point is finished by `run --resume <batchDir>`: finished runs are kept, the interrupted one
 * resumes from its events, prompts not yet started start. Locked like a run directory.
 */
export class BatchStore {
  private constructor(
    readonly dir: string,
    private current: BatchRecord,
  ) {}

  get batch(): BatchRecord {
    return this.current;
  }

  static create(parent: string, init: Pick<BatchRecord, 'source' | 'params' | 'config' | 'size' | 'prompts'>): BatchStore {
    makeOutputDir(parent);
    const id = 'batch-' + newRunId(path.basename(init.source).replace(/\.[a-z]+$/i, ''));
    const dir = path.resolve(parent, id);
    try {
      mkdirSync(dir);
    } catch (err) {
      throw new UserError(`cannot create a batch directory in ${parent} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
    }
    lockRunDir(dir);
    const now = new Date().toISOString();
    const store = new BatchStore(dir, { version: 1, kind: 'batch', id, createdAt: now, updatedAt: now, ...init });
    store.save();
    return store;
  }

  static async open(dir: string): Promise<BatchStore> {
    const batch = await readBatchRecord(dir);
    if (!batch) throw new UserError(`${dir} is not a batch directory (no ${BATCH_FILE})`);
    lockRunDir(path.resolve(dir));
    return new BatchStore(path.resolve(dir), batch);
  }

  /** Where prompt `i`'s run is, and how it stands. */
  setRun(i: number, dir: string, status: RunStatus): void {
    const prompts = this.current.prompts.map((p, k) => (k === i ? { ...p, dir: path.relative(this.dir, dir), status } : p));
    this.current = { ...this.current, prompts, updatedAt: new Date().toISOString() };
    this.save();
  }

  runDir(i: number): string | null {
    const d = this.current.prompts[i]?.dir;
    return d ? path.resolve(this.dir, d) : null;
  }

  close(): void {
    unlockRunDir(this.dir);
  }

  private save(): void {
    writeFileAtomic(path.join(this.dir, BATCH_FILE), JSON.stringify(this.current, null, 2) + '\n');
  }
}

/** The batch record of `dir`, or null when `dir` holds no batch.json. */
export async function readBatchRecord(dir: string): Promise<BatchRecord | null> {
  let text: string;
  try {
    text = await fs.readFile(path.join(dir, BATCH_FILE), 'utf8');
  } catch {
    return null;
  }
  try {
    const b = JSON.parse(text) as BatchRecord;
    if (b.kind !== 'batch' || b.version !== 1 || !Array.isArray(b.prompts)) throw new Error('not a batch record');
    return b;
  } catch (err) {
    throw new UserError(`${path.join(dir, BATCH_FILE)} is not a valid batch record (${errorMessage(err)})`);
  }
}
