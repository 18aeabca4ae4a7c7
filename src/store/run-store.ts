import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fstatSync, linkSync, mkdirSync, openSync, promises as fs, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { UserError, errorMessage } from '../core/errors.js';
import type { SearchIO } from '../core/io.js';
import type { Image } from '../core/types.js';
import { writeFileAtomic } from './atomic.js';
import { makeOutputDir } from './dirs.js';
import { eventFromDisk, runFromDisk } from './legacy.js';
import type { CallEvent, RunRecord } from './types.js';

export const RUN_FILE = 'run.json';
export const EVENTS_FILE = 'events.jsonl';
export const IMAGES_DIR = 'images';
/** Held by the process that runs the search in a directory: `{pid, host}`; removed when it stops. */
export const LOCK_FILE = '.lock';

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

  /**
   * Create `<parent>/<id>/`, a directory no run used before, and lock it. Fails with a UserError (and leaves nothing
   * behind) when the parent is unusable.
   */
  static async create(parent: string, init: Omit<RunRecord, 'id' | 'version' | 'createdAt' | 'updatedAt' | 'status' | 'candidates'>): Promise<RunStore> {
    makeOutputDir(parent);
    let id = '';
    let dir = '';
    for (let attempt = 0; ; attempt++) {
      id = newRunId(init.prompt);
      dir = path.resolve(parent, id);
      try {
        mkdirSync(dir); // not recursive: an existing directory is never reused
        break;
      } catch (err) {
        if (codeOf(err) !== 'EEXIST' || attempt >= 20) throw new UserError(`cannot create a run directory in ${parent} (${codeOf(err)})`);
      }
    }
    lockRunDir(dir);
    mkdirSync(path.join(dir, IMAGES_DIR));
    const now = new Date().toISOString();
    const run: RunRecord = { version: 1, id, ...init, status: 'running', createdAt: now, updatedAt: now, candidates: [] };
    const store = new RunStore(dir, run, []);
    await store.saveRun();
    await fs.writeFile(path.join(dir, EVENTS_FILE), '');
    return store;
  }

  /** Open an existing run directory to resume it; refused (a UserError) while another process runs it. */
  static async open(dir: string): Promise<RunStore> {
    // locked before run.json is read: a second process that read it before the first took the lock would see a
    // run the first has since finished
    const abs = path.resolve(dir);
    lockRunDir(abs);
    let run: RunRecord;
    try {
      run = await readRunRecord(dir);
    } catch (err) {
      unlockRunDir(abs);
      throw err;
    }
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

  /** Close the events file and release the directory's lock. */
  async close(): Promise<void> {
    if (this.eventsFd !== undefined) closeSync(this.eventsFd);
    this.eventsFd = undefined;
    unlockRunDir(this.dir);
  }
}

/** The run directories this process holds, each with the text of its lock file (a takeover writes another). */
const held = new Map<string, string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return codeOf(err) === 'EPERM';
  }
}

export interface LockOptions {
  /**
   * a lock of another host counts as dead (a queue worker whose job the queue gave to this one: the other's queue
   * lock expired); by default a lock of another host is live, since whether its process runs cannot be seen from here
   */
  otherHostsStale?: boolean;
}

/**
 * Take the run directory's lock file, exclusively. A lock whose process is gone (a kill -9, a power cut) is taken
 * over; one held by a live process on this host refuses the second runner. Processes that find the same dead lock at
 * the same instant take it over one at a time: exactly one of them ends up holding the lock.
 */
export function lockRunDir(dir: string, opts: LockOptions = {}): void {
  const file = path.join(dir, LOCK_FILE);
  // the token makes each lock file unlike any other, so a takeover can tell the dead lock it saw from a new one
  const me = JSON.stringify({ pid: process.pid, host: hostname(), token: randomBytes(8).toString('hex') }) + '\n';
  // the lock appears with its owner already written (a hard link of a finished file), never empty: a lock read
  // half-written would look stale and be taken over while its owner runs
  const mine = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    writeFileSync(mine, me, { flag: 'wx' });
  } catch (err) {
    throw new UserError(`cannot lock run directory ${dir} (${codeOf(err)})`);
  }
  try {
    takeLock(dir, file, mine, me, opts);
  } finally {
    rmSync(mine, { force: true });
  }
}

/**
 * How long a process seen removing a dead lock is waited for (it takes microseconds, unless the machine is so loaded
 * that the process is not scheduled), looking again every few milliseconds.
 */
const LOCK_WAIT_MS = 2000;
const LOCK_PAUSE_MS = 5;

function takeLock(dir: string, file: string, mine: string, me: string, opts: LockOptions): void {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let attempt = 0; attempt < 3 || Date.now() < deadline; attempt++) {
    try {
      createLock(file, mine, me);
      held.set(dir, me);
      removeTickets(dir);
      return;
    } catch (err) {
      if (codeOf(err) !== 'EEXIST') throw new UserError(`cannot lock run directory ${dir} (${codeOf(err)})`);
    }
    const seen = readLock(file);
    if (!seen) continue; // released between the two looks
    const pid = ownerPid(seen.text);
    const owner = ownerOf(seen.text);
    if (pid !== null && (owner.host !== hostname() ? !opts.otherHostsStale : pid !== process.pid && alive(pid))) {
      const where = owner.host === hostname() ? `process ${pid}` : `process ${pid} on ${String(owner.host)}`;
      throw new UserError(`run ${dir} is in use by ${where}; wait for it to finish or stop it (lock: ${file})`);
    }
    if (pid === process.pid && held.has(dir)) throw new UserError(`run ${dir} is already open in this process`);
    // stale (its process is gone; or torn, its writer died between open and write): removed by one process only
    if (!removeStaleLock(dir, file, seen, mine, me)) pause(LOCK_PAUSE_MS);
  }
  throw new UserError(`cannot lock run directory ${dir}: another process keeps taking it`);
}

/** One look at a lock file: its text and which file it is (a new lock is a new file, even with the same text). */
interface LockSeen {
  text: string;
  dev: number;
  ino: number;
  mtimeMs: number;
}

/** The lock file as it is now, read through one descriptor (text and identity of the same file); null when there is none. */
function readLock(file: string): LockSeen | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return null;
    throw new UserError(`cannot read the lock ${file} (${codeOf(err)})`);
  }
  try {
    const st = fstatSync(fd);
    return { text: readFileSync(fd, 'utf8'), dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs };
  } finally {
    closeSync(fd);
  }
}

function ownerOf(text: string): { pid?: unknown; host?: unknown } {
  try {
    const owner = JSON.parse(text) as unknown;
    return owner && typeof owner === 'object' ? (owner as { pid?: unknown; host?: unknown }) : {};
  } catch {
    return {};
  }
}

function ownerPid(text: string): number | null {
  const pid = ownerOf(text).pid;
  return typeof pid === 'number' ? pid : null;
}

const TICKET = '.takeover-';
/** Tickets of a dead lock tried in turn when the holders of the earlier ones died holding them. */
const TICKET_GENERATIONS = 8;
/** A ticket whose holder's pid cannot be read (being written where hard links are not supported) is dead after this. */
const TORN_TICKET_MS = 10_000;

/**
 * Remove the dead lock `seen`, if it is still the lock file. Removing is what two processes racing for a dead lock
 * must not both do: the later remove would delete the lock the earlier one has just taken. So a process removes it
 * only while holding its ticket, a file named after that one lock and created exclusively — one holder at a time —
 * and only after seeing, ticket in hand, that the lock file is still that very file with that very text. (A ticket
 * whose holder died is passed over for the next one.) Returns false when a live process holds the ticket: it is
 * removing the lock right now.
 */
function removeStaleLock(dir: string, file: string, seen: LockSeen, mine: string, me: string): boolean {
  // named by what every process that sees this lock sees alike: which file it is and its text
  const id = createHash('sha256').update(`${seen.dev}:${seen.ino}:${seen.text}`).digest('hex').slice(0, 16);
  for (let generation = 0; generation < TICKET_GENERATIONS; generation++) {
    const ticket = `${file}${TICKET}${id}${generation ? `.${generation}` : ''}`;
    try {
      createLock(ticket, mine, me);
    } catch (err) {
      if (codeOf(err) !== 'EEXIST') throw new UserError(`cannot lock run directory ${dir} (${codeOf(err)})`);
      const holder = readLock(ticket);
      if (!holder) return false; // let go of just now: look at the lock again
      const pid = ownerPid(holder.text);
      // a ticket naming this process is one a process before it with the same pid died holding (this one lets go of its own)
      const dead =
        pid === null ? Date.now() - holder.mtimeMs > TORN_TICKET_MS : ownerOf(holder.text).host === hostname() && (pid === process.pid || !alive(pid));
      if (dead) continue;
      return false;
    }
    try {
      const now = readLock(file);
      if (now && now.dev === seen.dev && now.ino === seen.ino && now.text === seen.text) rmSync(file, { force: true });
    } finally {
      rmSync(ticket, { force: true });
    }
    return true;
  }
  throw new UserError(`cannot lock run directory ${dir}: processes that died taking over its lock left ${file}${TICKET}${id}*; remove them`);
}

/**
 * Remove takeover tickets left in `dir`. Called once this process holds the lock: every ticket then names a lock that
 * is gone, so no one can be kept from anything by it.
 */
function removeTickets(dir: string): void {
  const prefix = LOCK_FILE + TICKET;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) if (name.startsWith(prefix)) rmSync(path.join(dir, name), { force: true });
}

/** Wait `ms` milliseconds, blocking (the lock is taken synchronously). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Create the lock file from `mine`, failing with EEXIST when it exists; where hard links are not supported, written in place. */
function createLock(file: string, mine: string, me: string): void {
  try {
    linkSync(mine, file);
  } catch (err) {
    const code = codeOf(err);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
    const fd = openSync(file, 'wx');
    writeSync(fd, me);
    closeSync(fd);
  }
}

/** Whether a live process (this one included) holds the run directory's lock: a lock left by a killed one does not count. */
export function runDirLocked(dir: string): boolean {
  let owner: { pid?: unknown; host?: unknown };
  try {
    owner = JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8')) as typeof owner;
  } catch {
    return false;
  }
  if (typeof owner.pid !== 'number') return false;
  return owner.host !== hostname() || alive(owner.pid);
}

/** Let go of the run directory's lock, if this process holds it; a lock another host has taken over since is left to it. */
export function unlockRunDir(dir: string): void {
  const me = held.get(dir);
  if (me === undefined) return;
  held.delete(dir);
  const file = path.join(dir, LOCK_FILE);
  if (readLock(file)?.text === me) rmSync(file, { force: true });
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
  return runFromDisk(run as RunRecord);
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
        events.push(eventFromDisk(JSON.parse(line) as CallEvent));
      } catch {
        throw new UserError(`${file}: line ${i + 1} is not valid JSON`);
      }
    });
  if (repair && end < text.length) await fs.truncate(file, Buffer.byteLength(text.slice(0, end)));
  return events;
}

export function newRunId(prompt: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const slug = prompt
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 32)
    .replace(/-+$/, '');
  return `${stamp}-${slug || 'run'}-${randomBytes(4).toString('hex')}`;
}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? errorMessage(err);
}
