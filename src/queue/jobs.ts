import { createHash } from 'node:crypto';
import { z } from 'zod';
import { promptRecordSchema } from '../config/prompts.js';
import { configSchema } from '../config/schema.js';
import { searchParamsSchema, STRATEGIES } from '../core/params.js';

/** What a worker is handed: one search job of an eval, or one prompt of a batch. Checked before anything runs. */
const strategy = z.enum(STRATEGIES);
const count = z.number().int().positive();

/**
 * One (prompt, run seed) of an eval: every strategy and budget, sharing the noise pool as one process does (the same
 * pool images for every strategy, the same pool scores for every strategy with the same verifier).
 */
export const evalJobSchema = z
  .object({
    kind: z.literal('eval'),
    v: z.literal(2),
    /** the folder (shared by every worker, unless a worker keeps its own: `worker --journal`) that keeps the journals */
    work: z.string().min(1),
    config: configSchema,
    arms: z.array(z.object({ label: z.string().min(1), strategy, oracle: z.boolean() }).strict()).min(1),
    /** eval --stop-at: each arm again, stopping at each score */
    stopAt: z.array(z.number().finite()),
    record: promptRecordSchema,
    seed: z.number().int().nonnegative(),
    budgets: z.array(count).min(1),
    width: count,
    chainHead: z.enum(['latest', 'best']),
    verifierAuc: z.boolean(),
    /** eval --cache: pool images kept across evals */
    cache: z.string().min(1).optional(),
    /** the enqueuer's embedded models (`embeddedModelsFingerprint`): a retrained model makes new jobs, not a replay of finished ones */
    models: z.string().min(1).optional(),
  })
  .strict();

/** Prompt `index` of a `run --prompts` batch: its run directory goes under `dir`. */
export const runJobSchema = z
  .object({
    kind: z.literal('run'),
    v: z.literal(1),
    dir: z.string().min(1),
    index: z.number().int().nonnegative(),
    prompt: z.string().min(1),
    record: promptRecordSchema.optional(),
    params: searchParamsSchema,
    config: configSchema,
    size: count.optional(),
    report: z.boolean(),
  })
  .strict();

export const jobSchema = z.discriminatedUnion('kind', [evalJobSchema, runJobSchema]);
export type EvalJob = z.infer<typeof evalJobSchema>;
export type RunJob = z.infer<typeof runJobSchema>;
export type JobData = EvalJob | RunJob;

/** A job to enqueue: its id is its search, so that enqueuing it again (or after Redis lost it) changes nothing. */
export interface QueuedJob {
  id: string;
  label: string;
  data: JobData;
}

/**
 * The job's id: a hash of what the search is. An eval job's working folder is left out, so that the same eval run
 * again finds the jobs (and journals) it already has; a batch job's run folder is what it is.
 */
export function jobId(data: JobData): string {
  const { work: _w, ...what } = data as EvalJob;
  return `${data.kind}-${createHash('sha256').update(JSON.stringify(data.kind === 'eval' ? what : data)).digest('hex').slice(0, 32)}`;
}

/** The first problem of a job's data, in one line. */
export function jobProblem(data: unknown): string | null {
  const r = jobSchema.safeParse(data);
  if (r.success) return null;
  const issue = r.error.issues[0]!;
  return `${issue.path.length ? issue.path.join('.') + ': ' : ''}${issue.message}`;
}
