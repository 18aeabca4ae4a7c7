import type { Image } from '../core/types.js';
import type { CallEvent } from '../store/types.js';

/**
 * Where a search keeps what it makes. The run store implements it on disk (and replays finished calls on
 * resume); `MemoryIO` keeps everything in memory for library use and tests.
 */
export interface SearchIO {
  /** a finished, successful call with this key from an earlier attempt, if any */
  cached(key: string): CallEvent | undefined;
  loadImage(id: string): Promise<Image>;
  /** must be durable before `record` of the call that made it */
  saveImage(id: string, image: Image): Promise<void>;
  record(event: CallEvent): Promise<void>;
}

export class MemoryIO implements SearchIO {
  readonly events: CallEvent[] = [];
  readonly images = new Map<string, Image>();

  cached(key: string): CallEvent | undefined {
    return this.events.find((e) => e.key === key && !e.error);
  }

  async loadImage(id: string): Promise<Image> {
    const img = this.images.get(id);
    if (!img) throw new Error(`image ${id} is not in memory`);
    return img;
  }

  async saveImage(id: string, image: Image): Promise<void> {
    this.images.set(id, image);
  }

  async record(event: CallEvent): Promise<void> {
    this.events.push(event);
  }
}
