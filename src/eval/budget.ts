import type { SearchParams, Strategy } from '../core/types.js';

/**
 * How a strategy spends a budget of B images in `eval`. noise: B seeds. The others: half the budget on the pool,
 * half on `width` chains (fewer when B is small), so `samples + width × depth = B` exactly:
 *   width 2: B=2 → 1 + 1×1, B=4 → 2 + 2×1, B=8 → 4 + 2×2, B=32 → 16 + 2×8.
 * B=1 is a single sample for every strategy.
 */
export function paramsForBudget(strategy: Strategy, budget: number, width: number, seed: number, chainHead: SearchParams['chainHead'] = 'latest'): SearchParams {
  if (strategy === 'noise') return { strategy, samples: budget, width: 1, depth: 0, seed, chainHead };
  const w = Math.min(width, Math.floor(budget / 2));
  if (w === 0) return { strategy, samples: budget, width: 1, depth: 0, seed, chainHead };
  const depth = Math.floor(budget / 2 / w);
  return { strategy, samples: budget - w * depth, width: w, depth, seed, chainHead };
}
