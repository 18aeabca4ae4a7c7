import type { Job, Queue } from 'bullmq';
import { errorMessage } from '../core/errors.js';
import { openQueue } from './connection.js';
import type { QueuedJob } from './jobs.js';

/** How each job is kept: retried with backoff, kept once finished (its result is read from it). */
export const JOB_OPTIONS = { attempts: 3, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: false, removeOnFail: false } as const;

export interface JobOutcome {
  id: string;
  label: string;
  /** the job's return value, when it completed */
  result?: unknown;
  /** why it failed, when it failed for good */
  error?: string;
  /** attempts the queue started (1 when nothing went wrong) */
  attempts: number;
  /** the worker that finished it */
  worker?: string;
}

export interface DispatchProgress {
  done: number;
  failed: number;
  active: number;
  total: number;
  /** attempts beyond the first, over the jobs that ended */
  retries: number;
  /** jobs Redis no longer had (it restarted empty) and that were added again */
  readded: number;
  /** set while Redis does not answer */
  waitingForRedis?: string;
}

/**
 * Put the jobs on the queue and wait until each one has completed or failed for good. Adding is idempotent: a job
 * the queue already has is not added twice (a job that failed before is retried); a job that vanishes (Redis
 * restarted without its data) is added again, and its worker resumes it from its journal.
 */
export async function dispatch(
  url: string,
  jobs: QueuedJob[],
  opts: { onProgress?: (p: DispatchProgress) => void; pollMs?: number } = {},
): Promise<JobOutcome[]> {
  const queue = await openQueue(url);
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const outcomes = new Map<string, JobOutcome>();
  const progress: DispatchProgress = { done: 0, failed: 0, active: 0, total: jobs.length, retries: 0, readded: 0 };
  try {
    await add(queue, jobs);
    for (const j of jobs) {
      const existing = await queue.getJob(j.id);
      if (existing && (await existing.getState()) === 'failed') await (existing as Job).retry('failed');
    }
    while (outcomes.size < jobs.length) {
      try {
        const pending = jobs.filter((j) => !outcomes.has(j.id));
        const states = await Promise.all(pending.map((j) => queue.getJobState(j.id)));
        const lost: QueuedJob[] = [];
        let active = 0;
        for (const [i, state] of states.entries()) {
          const j = pending[i]!;
          if (state === 'active') active++;
          if (state === 'unknown') lost.push(j);
          if (state !== 'completed' && state !== 'failed') continue;
          const job = (await queue.getJob(j.id)) as Job | undefined;
          if (!job) continue;
          const attempts = Math.max(1, job.attemptsStarted ?? job.attemptsMade);
          const out: JobOutcome = { id: j.id, label: j.label, attempts, ...(job.processedBy ? { worker: job.processedBy } : {}) };
          if (state === 'completed') out.result = job.returnvalue;
          else out.error = job.failedReason || 'failed without a reason';
          outcomes.set(j.id, out);
          progress.retries += attempts - 1;
          if (state === 'completed') progress.done++;
          else progress.failed++;
        }
        if (lost.length) {
          await add(queue, lost);
          progress.readded += lost.length;
        }
        progress.active = active;
        delete progress.waitingForRedis;
      } catch (err) {
        progress.waitingForRedis = errorMessage(err);
      }
      opts.onProgress?.({ ...progress });
      if (outcomes.size < jobs.length) await new Promise((r) => setTimeout(r, opts.pollMs ?? 250));
    }
  } finally {
    await queue.close().catch(() => {});
  }
  return jobs.map((j) => outcomes.get(j.id)!).filter((o) => byId.has(o.id));
}

async function add(queue: Queue, jobs: QueuedJob[]): Promise<void> {
  for (let i = 0; i < jobs.length; i += 500) {
    await queue.addBulk(jobs.slice(i, i + 500).map((j) => ({ name: j.data.kind, data: j.data, opts: { ...JOB_OPTIONS, jobId: j.id } })));
  }
}
