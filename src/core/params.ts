/** The search's parameters: one schema, which checks them (config files, flags, queued jobs) and types them. */
import { z } from 'zod';
import { STRATEGIES } from './strategies.js';

export { STRATEGIES, type Strategy } from './strategies.js';

const positiveInt = z.number().int().positive();

export const searchParamsSchema = z
  .object({
    strategy: z.enum(STRATEGIES),
    /** initial noise pool (N0) */
    samples: positiveInt.default(8),
    /** chains kept after round 0 (official: search_branch) */
    width: positiveInt.default(2),
    /** refinement rounds (official: search_rounds) */
    depth: z.number().int().nonnegative().default(4),
    seed: z.number().int().nonnegative().default(0),
    /** hard cap on images generated; the loop never exceeds it */
    maxImages: positiveInt.optional(),
    /**
     * What becomes a chain's head after a round: the new image always (`latest`, as the official scripts), or the
     * better of old and new by the verifier (`best`).
     */
    chainHead: z.enum(['latest', 'best']).default('latest'),
    /**
     * Stop spending once an image's verifier score reaches this (on the verifier's own scale): the pool is made in
     * waves of `wave` images and the chains round by round, and the search ends after the wave or round in which the
     * first image passes. The budget stays the cap.
     */
    stopAt: z.number().finite().optional(),
    /** pool images per wave when `stopAt` is set (default 4) */
    wave: positiveInt.optional(),
  })
  .strict();

export type SearchParams = z.infer<typeof searchParamsSchema>;
