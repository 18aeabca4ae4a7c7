/**
 * The web view's read side: the runs of a folder as summaries (from run.json only, a page at a time), and one run's
 * own files followed as they grow — events.jsonl line by line and run.json's status — so a live, resumed or finished
 * run is shown from the same record the CLI resumes from.
 */
import { existsSync, promises as fs, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../core/errors.js';
import type { CallEvent, RunRecord, RunStatus } from '../store/types.js';
import { eventFromDisk } from '../store/legacy.js';
import { EVENTS_FILE, readRunRecord, RUN_FILE, runDirLocked } from '../store/run-store.js';
import { ApiError, quote } from '../server/errors.js';

/** Run directory names and image ids: never a path outside the folder. */
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;

export interface RunSummary {
  id: string;
  prompt: string;
  strategy: string;
  params: RunRecord['params'];
  backends: RunRecord['backends'];
  /** `running` only while a live process holds the run; a run whose process died shows `interrupted` */
  status: RunStatus;
  createdAt: string;
  updatedAt: string;
  images: number;
  bestId: string | null;
  bestScore: number | null;
  chains: Array<{ chain: number; ids: string[]; bestId: string }>;
  imagesGenerated: number | null;
  budget: number | null;
  error: string | null;
}

export function summaryOf(run: RunRecord): RunSummary {
  const r = run.result;
  return {
    id: run.id,
    prompt: run.prompt,
    strategy: run.params.strategy,
    params: run.params,
    backends: run.backends,
    status: run.status,
    createdAt: run.createdAt,
    updatedAt: run.updatedAt,
    images: run.candidates.length,
    bestId: r?.bestId ?? null,
    bestScore: r?.bestScore ?? null,
    chains: r?.chains ?? [],
    imagesGenerated: r?.imagesGenerated ?? null,
    budget: r?.budget ?? null,
    error: run.error ?? null,
  };
}

/** The runs folder: listing, one run's directory and summary. */
export class RunFolder {
  /** summaries by directory, kept while run.json's mtime is the same (a finished run's is read once) */
  private readonly cache = new Map<string, { mtimeMs: number; summary: RunSummary }>();

  constructor(readonly dir: string) {}

  /** The directory of run `id`, or a 404 when the folder holds no such run. */
  runDir(id: string): string {
    if (!SAFE_NAME.test(id) || !existsSync(path.join(this.dir, id, RUN_FILE))) throw new ApiError(404, `no run ${quote(id)} in ${this.dir}`, 'run_not_found');
    return path.join(this.dir, id);
  }

  /** The path of one image of a run, or a 404. */
  imagePath(id: string, image: string): string {
    const dir = this.runDir(id);
    const file = path.join(dir, 'images', `${image}.png`);
    if (!SAFE_NAME.test(image) || !existsSync(file)) throw new ApiError(404, `run ${quote(id)} has no image ${quote(image)}`, 'image_not_found');
    return file;
  }

  /**
   * Newest first (run ids start with their creation time), `limit` from `offset`. Only the page's run.json files are
   * read, so a folder of thousands of runs opens as fast as one of fifty.
   */
  async list(offset: number, limit: number): Promise<{ total: number; runs: RunSummary[] }> {
    let names: string[];
    try {
      names = readdirSync(this.dir, { withFileTypes: true })
        .filter((d) => d.isDirectory() && SAFE_NAME.test(d.name) && existsSync(path.join(this.dir, d.name, RUN_FILE)))
        .map((d) => d.name)
        .sort()
        .reverse();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { total: 0, runs: [] };
      throw err;
    }
    const page = names.slice(offset, offset + limit);
    const runs = await Promise.all(page.map((name) => this.summary(name).catch(() => null)));
    return { total: names.length, runs: runs.filter((r): r is RunSummary => r !== null) };
  }

  /** run.json's summary; `running` only while a live process holds the run's lock */
  async summary(id: string): Promise<RunSummary> {
    const dir = this.runDir(id);
    const mtimeMs = statSync(path.join(dir, RUN_FILE)).mtimeMs;
    let hit = this.cache.get(dir);
    if (!hit || hit.mtimeMs !== mtimeMs) {
      hit = { mtimeMs, summary: summaryOf(await readRunRecord(dir)) };
      this.cache.set(dir, hit);
    }
    return hit.summary.status === 'running' && !runDirLocked(dir) ? { ...hit.summary, status: 'interrupted' } : hit.summary;
  }
}

export interface Follower {
  stop(): void;
}

export interface FollowHandlers {
  /** run.json, at the start and each time it changes */
  run(summary: RunSummary): void;
  /** new complete lines of events.jsonl, in file order */
  calls(events: CallEvent[]): void;
  /** the run is over (not running, every event sent): nothing more will come */
  end(): void;
}

/**
 * Follow a run directory: every event already written, then each new one, and run.json's changes; `end` once the
 * run no longer runs (its status read before its last events, so none is missed). Polls the two files: works the
 * same for a run of this process, of another process, or one that is over.
 */
export function followRun(folder: RunFolder, id: string, isActive: () => boolean, on: FollowHandlers, pollMs = 150): Follower {
  const dir = folder.runDir(id);
  const eventsFile = path.join(dir, EVENTS_FILE);
  let offset = 0;
  let tail = '';
  let runKey = '';
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const readNewEvents = async (): Promise<void> => {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(eventsFile, 'r');
    } catch {
      return;
    }
    try {
      const { size } = await fh.stat();
      if (size < offset) {
        // cut back (a torn last line repaired on resume): the complete lines before it were sent already
        offset = size;
        tail = '';
      }
      if (size === offset) return;
      const buf = Buffer.alloc(size - offset);
      const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
      offset += bytesRead;
      const text = tail + buf.subarray(0, bytesRead).toString('utf8');
      const end = text.lastIndexOf('\n') + 1;
      tail = text.slice(end);
      const events: CallEvent[] = [];
      for (const line of text.slice(0, end).split('\n')) {
        if (!line.trim()) continue;
        try {
          events.push(eventFromDisk(JSON.parse(line) as CallEvent));
        } catch {
          // a line that is not JSON is not an event (resume refuses such a file with its line number)
        }
      }
      if (events.length) on.calls(events);
    } finally {
      await fh.close();
    }
  };

  const tick = async (): Promise<void> => {
    if (stopped) return;
    let over = false;
    try {
      const active = isActive();
      const summary = await folder.summary(id);
      // the effective status can change without a new run.json (its process died): compare the summaries
      const key = `${statSync(path.join(dir, RUN_FILE)).mtimeMs}:${summary.status}`;
      if (key !== runKey) {
        runKey = key;
        if (!stopped) on.run(summary);
      }
      over = summary.status !== 'running' && !active;
      await readNewEvents();
    } catch (err) {
      if (!(err instanceof UserError)) throw err; // run.json mid-rewrite cannot happen (atomic); an invalid one ends the stream
      over = true;
    }
    if (stopped) return;
    if (over) {
      stopped = true;
      on.end();
      return;
    }
    timer = setTimeout(() => void tick().catch(() => on.end()), pollMs);
  };
  void tick().catch(() => on.end());
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

/** Eval results folders (`eval-…` with results.json) of a folder, newest first. */
export function listEvals(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && SAFE_NAME.test(d.name) && existsSync(path.join(dir, d.name, 'results.json')))
      .map((d) => d.name)
      .sort()
      .reverse();
  } catch {
    return [];
  }
}

/** One eval results folder's path, or a 404. */
export function evalDir(dir: string, name: string): string {
  if (!SAFE_NAME.test(name) || !existsSync(path.join(dir, name, 'results.json'))) throw new ApiError(404, `no eval results ${quote(name)} in ${dir}`, 'eval_not_found');
  return path.join(dir, name);
}
