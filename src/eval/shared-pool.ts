import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Image } from '../core/types.js';
import type { SearchIO } from '../search/io.js';
import { writeFileAtomic } from '../store/atomic.js';
import type { CallEvent } from '../search/io.js';

/**
 * An in-memory SearchIO for one prompt and seed that shares the noise pool between searches: round-0 image ids
 * depend only on the run seed and the image's index, so `generate:r0-…` and `verify:r0-…` calls are the same call
 * whatever the budget. Later rounds depend on which images became chain heads and are never shared.
 *
 * With a cache folder, pool images also persist across eval runs (keyed by generator identity and prompt), so an
 * oracle run over the same generator costs verification only.
 */
export class SharedPoolIO {
  private readonly poolEvents = new Map<string, CallEvent>();
  private readonly poolImages = new Map<string, Image>();
  private readonly cacheDir: string | undefined;
  private readonly journal: string | undefined;
  /** non-pool events recorded in the journal before, per session name */
  private readonly earlier = new Map<string, Map<string, CallEvent>>();

  /**
   * @param journal a folder that keeps every call and image (`events.jsonl`, `images/`), so that a search killed
   *   at any point is resumed by a new SharedPoolIO on the same folder: its finished calls are replayed. One
   *   process at a time writes a journal.
   */
  constructor(cache?: { dir: string; generatorKey: string; prompt: string }, journal?: { dir: string; events: JournalEvent[] }) {
    if (journal) {
      this.journal = journal.dir;
      mkdirSync(path.join(journal.dir, 'images'), { recursive: true });
      for (const { session, ...e } of journal.events) {
        if (e.error) continue;
        if (session === undefined) this.poolEvents.set(e.key, e);
        else {
          let m = this.earlier.get(session);
          if (!m) this.earlier.set(session, (m = new Map()));
          m.set(e.key, e);
        }
      }
    }
    if (cache) {
      const h = createHash('sha256').update(`${cache.generatorKey}\u0000${cache.prompt}`).digest('hex').slice(0, 24);
      this.cacheDir = path.join(cache.dir, h);
      mkdirSync(this.cacheDir, { recursive: true });
    }
  }

  private fromDisk(key: string): CallEvent | undefined {
    if (!this.cacheDir || !key.startsWith('generate:r0-')) return undefined;
    const id = key.slice('generate:'.length);
    const file = path.join(this.cacheDir, `${id}.png`);
    if (!existsSync(file)) return undefined;
    this.poolImages.set(id, { png: new Uint8Array(readFileSync(file)) });
    const event: CallEvent = { key, role: 'generator', backend: 'cache', inputIds: [], outputId: id, candidateId: id, ms: 0, at: new Date().toISOString() };
    this.poolEvents.set(key, event);
    return event;
  }

  /**
   * A fresh SearchIO for one search; its pool calls are answered from (and added to) the shared pool. Pool images
   * are shared by every session; pool scores only by sessions of the same `verifierScope`.
   */
  session(verifierScope = '', name = ''): SearchIO {
    const events = new Map<string, CallEvent>(this.earlier.get(name));
    const images = new Map<string, Image>();
    const isPool = (id: string) => id.startsWith('r0-');
    const poolKey = (key: string) => (key.startsWith('generate:') ? key : `${verifierScope}\u0000${key}`);
    const sessionDir = this.journal && path.join(this.journal, 'images', createHash('sha256').update(name).digest('hex').slice(0, 16));
    const file = (id: string) => (isPool(id) ? path.join(this.journal!, 'images', `${id}.png`) : path.join(sessionDir!, `${id}.png`));
    return {
      cached: (key) => this.poolEvents.get(poolKey(key)) ?? events.get(key) ?? this.fromDisk(key),
      loadImage: async (id) => {
        let img = (isPool(id) ? this.poolImages.get(id) : undefined) ?? images.get(id);
        if (!img && this.journal && existsSync(file(id))) img = { png: new Uint8Array(readFileSync(file(id))) };
        if (!img) throw new Error(`image ${id} not kept`);
        return img;
      },
      saveImage: async (id, image) => {
        if (this.journal) {
          if (!isPool(id)) mkdirSync(sessionDir!, { recursive: true });
          writeFileAtomic(file(id), image.png);
        }
        if (!isPool(id)) return void images.set(id, image);
        this.poolImages.set(id, image);
        if (this.cacheDir) writeFileAtomic(path.join(this.cacheDir, `${id}.png`), image.png);
      },
      record: async (event) => {
        if (event.error) return;
        const pool = isPool(event.candidateId) && (event.role === 'generator' || event.role === 'verifier');
        if (pool) this.poolEvents.set(poolKey(event.key), event);
        else events.set(event.key, event);
        // one synchronous append per line: a kill leaves at most a torn last line, which the reader drops
        if (this.journal) {
          const line: JournalEvent = pool ? { ...event, key: poolKey(event.key) } : { ...event, session: name };
          appendFileSync(path.join(this.journal, 'events.jsonl'), JSON.stringify(line) + '\n');
        }
      },
    };
  }
}

/** A line of a journal's events.jsonl: a pool call (no session; its key carries the verifier scope) or a search's own. */
export type JournalEvent = CallEvent & { session?: string };
