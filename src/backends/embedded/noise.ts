import { mulberry32 } from '../../shapeworld/random.js';

/**
 * Standard normal noise from a seed (mulberry32 + Box–Muller): the seed alone decides the starting point of the
 * flow, so the same seed gives the same image on any machine and in any batch.
 */
export function gaussianNoise(seed: number, length: number): Float32Array {
  const rand = mulberry32(seed);
  const out = new Float32Array(length);
  for (let i = 0; i < length; i += 2) {
    const u1 = Math.max(rand(), 1e-12);
    const u2 = rand();
    const r = Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < length) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}
