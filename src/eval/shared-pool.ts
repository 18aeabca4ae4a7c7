import type { Image } from '../core/types.js';
import type { SearchIO } from '../search/io.js';
import type { CallEvent } from '../store/types.js';

/**
 * An in-memory SearchIO for one prompt and seed that shares the noise pool between searches: round-0 image ids
 * depend only on the run seed and the image's index, so `generate:r0-…` and `verify:r0-…` calls are the same call
 * whatever the budget. Later rounds depend on which images became chain heads and are never shared.
 */
export class SharedPoolIO {
  private readonly poolEvents = new Map<string, CallEvent>();
  private readonly poolImages = new Map<string, Image>();

  /** A fresh SearchIO for one search; its pool calls are answered from (and added to) the shared pool. */
  session(): SearchIO {
    const events = new Map<string, CallEvent>();
    const images = new Map<string, Image>();
    const isPool = (id: string) => id.startsWith('r0-');
    return {
      cached: (key) => this.poolEvents.get(key) ?? events.get(key),
      loadImage: async (id) => {
        const img = (isPool(id) ? this.poolImages.get(id) : undefined) ?? images.get(id);
        if (!img) throw new Error(`image ${id} not kept`);
        return img;
      },
      saveImage: async (id, image) => {
        (isPool(id) ? this.poolImages : images).set(id, image);
      },
      record: async (event) => {
        if (event.error) return;
        (isPool(event.candidateId) && (event.role === 'generate' || event.role === 'verify') ? this.poolEvents : events).set(
          event.key,
          event,
        );
      },
    };
  }
}
