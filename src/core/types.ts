/** An image as the roles exchange it: encoded PNG bytes. */
export interface Image {
  png: Uint8Array;
}

/** GenEval metadata that may travel with a prompt (the verifier may use its tag for a rubric). */
export interface PromptMeta {
  tag?: string;
  include?: Array<Record<string, unknown>>;
  exclude?: Array<Record<string, unknown>>;
  [key: string]: unknown;
}

/** A verifier's judgement of one image against the original prompt. Higher `score` is better. */
export interface Evaluation {
  score: number;
  /** yes/no verifiers: the answer; rubric verifiers leave it out. */
  label?: 'yes' | 'no';
  /** rubric verifiers: 0–10 per aspect. */
  aspects?: Record<string, number>;
  /** the model's own words, kept for the reflector and the report. */
  raw?: string;
}

/** A reflection: concrete edit instructions for one image. */
export interface Reflection {
  text: string;
  items: string[];
}

export { STRATEGIES, type Strategy } from './strategies.js';
export type { SearchParams } from './params.js';

/**
 * One node of the search tree: an image with everything that made it and everything said of it.
 * `id` is stable across runs with the same config and seed: `r0-i<index>-s<seed>` for the pool (index zero-padded
 * to three digits, e.g. `r0-i007-s1234`), `r<round>-c<chain>-s<seed>` for the chains' images (e.g. `r2-c1-s5678`).
 */
export interface Candidate {
  id: string;
  round: number;
  /** chain index once the image belongs to a chain; null for pool images that were not kept */
  chain: number | null;
  seed: number;
  parentId: string | null;
  /** the prompt the image was made from (the refined prompt after round 0) */
  prompt: string;
  /** the reflection the corrector was given, for corrected images */
  reflection?: Reflection;
  /** how it was made */
  origin: 'generate' | 'correct';
  evaluation?: Evaluation;
  /** verification failed: the image ranks last */
  verifyError?: string;
  /** reflection written on this image (it is then the parent of the next round's image) */
  reflectionOut?: Reflection;
  /** prompt refined from this image */
  refinedPrompt?: string;
}

export interface ChainSummary {
  chain: number;
  ids: string[];
  bestId: string;
}

export interface SearchResult {
  candidates: Candidate[];
  chains: ChainSummary[];
  bestId: string | null;
  /** images generated (generator + corrector calls that produced an image) */
  imagesGenerated: number;
  /** images the plan asked for */
  budget: number;
  /** the image whose score reached `stopAt`, when the search stopped early */
  stoppedAt?: string;
}
