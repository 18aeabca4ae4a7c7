import type { SearchParams, Strategy } from '../core/types.js';

/**
 * What a search will generate, fixed before the first call so that a `--max-images` cap and a resumed run cut
 * at exactly the same place.
 */
export interface SearchPlan {
  strategy: Strategy;
  /** images generated in round 0 */
  pool: number;
  /** chains kept after round 0 */
  width: number;
  /** rounds after round 0 */
  depth: number;
  /** chain steps the plan makes: round 1 chain 0, chain 1, …, then round 2, … (row-major), the first `chainSteps` */
  chainSteps: number;
  /** images the plan generates: pool + enabled steps */
  budget: number;
  /** images the parameters ask for before any cap */
  requested: number;
}

/**
 * Budget = samples + width × depth images for every strategy, so that strategies compare at equal budget:
 * `noise` spends all of it on fresh seeds in round 0; the others spend `samples` on the pool and width × depth on
 * the chains. A cap (`maxImages`) cuts the pool first, then rounds in order (round 1 chain 0, chain 1, …).
 */
export function makePlan(p: SearchParams): SearchPlan {
  const requested = p.samples + p.width * p.depth;
  const cap = p.maxImages ?? Infinity;
  if (p.strategy === 'noise') {
    const pool = Math.min(requested, cap);
    // best-of-N keeps no chains: every image is a pool image
    return { strategy: p.strategy, pool, width: 0, depth: 0, chainSteps: 0, budget: pool, requested };
  }
  const pool = Math.min(p.samples, cap);
  const width = Math.min(p.width, pool);
  // counted, not listed: a depth of 10^6 must plan in constant memory
  const chainSteps = Math.min(Math.max(0, cap - pool), width * p.depth);
  return { strategy: p.strategy, pool, width, depth: p.depth, chainSteps, budget: pool + chainSteps, requested };
}

/** Does chain `chain` get an image in round `round` (1-based)? */
export function planned(plan: SearchPlan, round: number, chain: number): boolean {
  return (round - 1) * plan.width + chain < plan.chainSteps;
}
