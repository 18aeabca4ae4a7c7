import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, promises as fs, writeSync } from 'node:fs';
import path from 'node:path';
import { UserError, errorMessage } from '../core/errors.js';
import type { Image } from '../core/types.js';
import type { SearchIO } from '../search/io.js';
import { writeFileAtomic } from './atomic.js';
import type { CallEvent, RunRecord } from './types.js';

export const RUN_FILE = 'run.json';
export const EVENTS_FILE = 'events.jsonl';
export const IMAGES_DIR = 'images';

/**
 * One run directory: `run.json` (rewritten atomically), `events.jsonl` (appended, one line per call),
 * `images/<id>.png` (each written atomically before the event that names it). A run killed at any point can be
 * resumed: finished calls are replayed from events.jsonl, a torn last line is dropped.
 */
export class RunStore implements SearchIO {
  private readonly done = new Map<string, CallEvent>();
  private eventsFd: number | undefined;

  private constructor(
    readonly dir: string,
    private current: RunRecord,
    events: CallEvent[],
  ) {
    for (const e of events) if (!e.error) this.done.set(e.key, e);
  }

  get run(): RunRecord {
    return this.current;
  }

  /** Create `<parent>/<id>/`. Fails with a UserError (and leaves nothing behind) when the parent is unusable. */
  static async create(parent: string, init: Omit<RunRecord, 'id' | 'version' | 'createdAt' | 'updatedAt' | 'status' | 'candidates'>): Promise<RunStore> {
    const id = newRunId(init.prompt);
    const dir = path.resolve(parent, id);
    try {
      await fs.mkdir(parent, { recursive: true });
      await fs.access(parent, fs.constants.W_OK);
    } catch (err) {
      throw new UserError(`output directory ${parent} is not writable (${codeOf(err)})`);
    }
    await fs.mkdir(path.join(dir, IMAGES_DIR), { recursive: true });
    const now = new Date().toISOString();
    const run: RunRecord = { version: 1, id, ...init, status: 'running', createdAt: now, updatedAt: now, candidates: [] };
    const store = new RunStore(dir, run, []);
    await store.saveRun();
    await fs.writeFile(path.join(dir, EVENTS_FILE), '');
    return store;
  }

  /** Open an existing run directory to resume it. */
  static async open(dir: string): Promise<RunStore> {
    const run = await readRunRecord(dir);
    const eventsPath = path.join(dir, EVENTS_FILE);
    const events = existsSync(eventsPath) ? await readEvents(eventsPath, true) : [];
    // an image whose event is missing may be torn or stale: its call is redone and the file rewritten
    return new RunStore(path.resolve(dir), run, events);
  }

  cached(key: string): CallEvent | undefined {
    return this.done.get(key);
  }

  imagePath(id: string): string {
    return path.join(this.dir, IMAGES_DIR, `${id}.png`);
  }

  async loadImage(id: string): Promise<Image> {
    return { png: new Uint8Array(await fs.readFile(this.imagePath(id))) };
  }

  async saveImage(id: string, image: Image): Promise<void> {
    writeFileAtomic(this.imagePath(id), image.png);
  }

  async record(event: CallEvent): Promise<void> {
    // one synchronous write per line: lines from concurrent calls never interleave
    this.eventsFd ??= openSync(path.join(this.dir, EVENTS_FILE), 'a');
    writeSync(this.eventsFd, JSON.stringify(event) + '\n');
    if (!event.error) this.done.set(event.key, event);
  }

  async update(patch: Partial<RunRecord>): Promise<void> {
    this.current = { ...this.current, ...patch, updatedAt: new Date().toISOString() };
    await this.saveRun();
  }

  private async saveRun(): Promise<void> {
    writeFileAtomic(path.join(this.dir, RUN_FILE), JSON.stringify(this.current, null, 2) + '\n');
  }

  async close(): Promise<void> {
    if (this.eventsFd !== undefined) closeSync(this.eventsFd);
    this.eventsFd = undefined;
  }
}

export async function readRunRecord(dir: string): Promise<RunRecord> {
  const file = path.join(dir, RUN_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read ${file}${code === 'ENOENT' ? ': no such file (is this a run directory?)' : ` (${code ?? errorMessage(err)})`}`);
  }
  let run: unknown;
  try {
    run = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${file} is not valid JSON: ${errorMessage(err).replace(/\s+/g, ' ').trim()}`);
  }
  const problem = checkRun(run);
  if (problem) throw new UserError(`${file} is not a valid run record: ${problem}`);
  return run as RunRecord;
}

/** The shape readers rely on; a short reason when it is not there. */
function checkRun(run: unknown): string | null {
  if (!run || typeof run !== 'object' || Array.isArray(run)) return 'not a JSON object';
  const r = run as Record<string, unknown>;
  if (r.version !== 1) return `unsupported version ${JSON.stringify(r.version)}`;
  if (typeof r.id !== 'string') return 'missing "id"';
  if (typeof r.prompt !== 'string') return 'missing "prompt"';
  if (!r.params || typeof r.params !== 'object') return 'missing "params"';
  if (!Array.isArray(r.candidates)) return 'missing "candidates"';
  for (const [i, c] of (r.candidates as unknown[]).entries()) {
    const cand = c as Record<string, unknown> | null;
    if (!cand || typeof cand !== 'object' || typeof cand.id !== 'string' || typeof cand.round !== 'number') {
      return `candidates[${i}] has no id or round`;
    }
  }
  return null;
}

/**
 * Read events.jsonl. Every event is written as one line ending in a newline; a process killed mid-append leaves
 * an unterminated tail, which is not an event. With `repair` the tail is cut off so later appends start clean.
 */
export async function readEvents(file: string, repair = false): Promise<CallEvent[]> {
  const text = await fs.readFile(file, 'utf8');
  const end = text.lastIndexOf('\n') + 1;
  const events: CallEvent[] = [];
  text
    .slice(0, end)
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        events.push(JSON.parse(line) as CallEvent);
      } catch {
        throw new UserError(`${file}: line ${i + 1} is not valid JSON`);
      }
    });
  if (repair && end < text.length) await fs.truncate(file, Buffer.byteLength(text.slice(0, end)));
  return events;
}

function newRunId(prompt: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const slug = prompt
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 32)
    .replace(/-+$/, '');
  return `${stamp}-${slug || 'run'}-${randomBytes(2).toString('hex')}`;
}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? errorMessage(err);
}
