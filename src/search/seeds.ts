/** 32-bit mixing (the finaliser of MurmurHash3): spreads nearby inputs over the whole range. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * The seed of one image of a run, from the run seed and the image's place in the plan. Stable across runs and
 * resumes, independent of the order calls finish in. Kept below 2^31 so every backend accepts it.
 */
export function deriveSeed(runSeed: number, round: number, index: number): number {
  let h = mix32(runSeed >>> 0);
  h = mix32(h ^ Math.imul(round + 1, 0x9e3779b1));
  h = mix32(h ^ Math.imul(index + 1, 0x7feb352d));
  return h & 0x7fffffff;
}
