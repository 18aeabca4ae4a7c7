import type { Candidate } from '../core/types.js';

/**
 * Ranking: verified images by score, highest first; images whose verification failed (or never ran) last.
 * Ties keep the order given, which the loop makes the plan order, so the choice never depends on timing.
 */
export function rank(candidates: readonly Candidate[]): Candidate[] {
  return candidates
    .map((c, i) => ({ c, i }))
    .sort((a, b) => scoreOf(b.c) - scoreOf(a.c) || a.i - b.i)
    .map((x) => x.c);
}

export function bestOf(candidates: readonly Candidate[]): Candidate {
  const best = rank(candidates)[0];
  if (!best) throw new Error('bestOf: no candidates');
  return best;
}

function scoreOf(c: Candidate): number {
  return c.evaluation && Number.isFinite(c.evaluation.score) ? c.evaluation.score : -Infinity;
}
