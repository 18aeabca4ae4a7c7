/**
 * Built-in prices for the cost estimate: what a backend's default model costs, each read from the provider's own
 * page on the date given (`asOf`). Only prices found on an official page are here; a backend without one has no
 * estimate unless the config's `prices` sets it. The config's entries override these per backend name, and `null`
 * switches one off. Prices change and tiers, discounts and taxes differ: set what you pay. Nothing is sent anywhere.
 */
import type { Price } from './usage.js';

/** Where a built-in price was read, and when (YYYY-MM-DD). */
export interface PriceSource {
  source: string;
  asOf: string;
}

export type BuiltInPrice = Price & PriceSource;

export const BUILT_IN_PRICES: Readonly<Record<string, BuiltInPrice>> = {
  // fal's model page: "$0.04 per images" (one image per call, the backend's corrector)
  'fal:fal-ai/flux-pro/kontext': { perImage: 0.04, source: 'https://fal.ai/models/fal-ai/flux-pro/kontext/llms.txt', asOf: '2026-12-06' },
  // fal's llms.txt (read in a repository's verbatim copy of it): "Price: $0.025 per megapixels", image_size "Default value: landscape_4_3"; fal's docs (/docs/documentation/model-apis/model-arguments): "landscape_4_3 1024x768"; fal's FLUX.1 [dev] playground (fal-ai/flux-1/dev): "Images are billed by rounding up to the nearest megapixel" — the backend sends no size by default, so one image is 1 MP (another `size` can cost more)
  'fal:fal-ai/flux/dev': { perImage: 0.025, source: 'https://fal.ai/models/fal-ai/flux/dev/llms.txt', asOf: '2026-12-06' },
};

/** A price table as the config gives it: per backend name, a price, or `null` for none (a built-in one switched off). */
export type PriceTable = Record<string, Price | null>;

/** A backend's price and, when it is a built-in one, where it was read. */
export interface ResolvedPrice {
  price: Price;
  builtIn?: PriceSource;
}

/** The price of a backend: the table's entry when it has one (`null`: no price), else the built-in one, else none. */
export function resolvePrice(name: string, table: PriceTable | undefined): ResolvedPrice | null {
  if (table && Object.hasOwn(table, name)) {
    const p = table[name];
    return p ? { price: p } : null;
  }
  const b = BUILT_IN_PRICES[name];
  if (!b) return null;
  const { source, asOf, ...price } = b;
  return { price, builtIn: { source, asOf } };
}

/**
 * `built-in price for fal:fal-ai/flux-pro/kontext (fal.ai, read 2026-12-06)`: which prices of an estimate came from
 * the built-in table, where and when they were read; for summaries and tables.
 */
export function builtInNote(builtIn: Readonly<Record<string, PriceSource>>): string {
  const names = Object.keys(builtIn).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const each = names.map((name) => `${name} (${hostOf(builtIn[name]!.source)}, read ${builtIn[name]!.asOf})`);
  return `built-in price${names.length === 1 ? '' : 's'} for ${each.join(', ')}`;
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}
