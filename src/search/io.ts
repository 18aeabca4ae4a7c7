import type { CallEvent, SearchIO } from '../core/io.js';
import type { Image } from '../core/types.js';

// the port's types are core's (the store implements it too); re-exported here beside the memory implementation
export type { CallEvent, SearchIO } from '../core/io.js';

/** A `SearchIO` that keeps everything in memory, for library use and tests. */
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
