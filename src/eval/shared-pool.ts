import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
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

  constructor(cache?: { dir: string; generatorKey: string; prompt: string }) {
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
    const event: CallEvent = { key, role: 'generate', backend: 'cache', inputIds: [], outputId: id, candidateId: id, ms: 0, at: new Date().toISOString() };
    this.poolEvents.set(key, event);
    return event;
  }

  /**
   * A fresh SearchIO for one search; its pool calls are answered from (and added to) the shared pool. Pool images
   * are shared by every session; pool scores only by sessions of the same `verifierScope`.
   */
  session(verifierScope = ''): SearchIO {
    const events = new Map<string, CallEvent>();
    const images = new Map<string, Image>();
    const isPool = (id: string) => id.startsWith('r0-');
    const poolKey = (key: string) => (key.startsWith('generate:') ? key : `${verifierScope}\u0000${key}`);
    return {
      cached: (key) => this.poolEvents.get(poolKey(key)) ?? events.get(key) ?? this.fromDisk(key),
      loadImage: async (id) => {
        const img = (isPool(id) ? this.poolImages.get(id) : undefined) ?? images.get(id);
        if (!img) throw new Error(`image ${id} not kept`);
        return img;
      },
      saveImage: async (id, image) => {
        if (!isPool(id)) return void images.set(id, image);
        this.poolImages.set(id, image);
        if (this.cacheDir) writeFileAtomic(path.join(this.cacheDir, `${id}.png`), image.png);
      },
      record: async (event) => {
        if (event.error) return;
        if (isPool(event.candidateId) && (event.role === 'generate' || event.role === 'verify')) this.poolEvents.set(poolKey(event.key), event);
        else events.set(event.key, event);
      },
    };
  }
}
