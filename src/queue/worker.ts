import { DelayedError, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import path from 'node:path';
import { hostname } from 'node:os';
import type { PromptRecord } from '../config/prompts.js';
import { UserError, errorMessage } from '../core/errors.js';
import type { RoleSet } from '../core/roles.js';
import { evaluatorJudge } from '../eval/judge.js';
import { connectionOf, QUEUE_NAME } from './connection.js';
import { processEvalJob } from './eval-jobs.js';
import { JobDirBusy } from './job-dir.js';
import { jobProblem, type JobData } from './jobs.js';
import { processRunJob } from './run-jobs.js';

export interface WorkerOptions {
  url: string;
  /** jobs in flight at once (backend limits still apply within them) */
  concurrency: number;
  /** how long a job stays with a worker that stopped renewing its lock (a kill, a hang) before another takes it */
  stallMs: number;
  /** where this worker keeps eval journals when it does not share the eval's folder (another machine) */
  journal?: string;
  /** one line per job event */
  log?: (line: string) => void;
}

/** A worker process's name on the jobs it finishes (`processedBy`). */
export const workerName = (): string => `${hostname()}:${process.pid}`;

/**
 * Take jobs off the queue and run them with the backends their config names. A job whose data is malformed, or
 * that can never run here (a bad config, an unknown backend), fails at once with its reason; any other error is
 * retried (the next attempt resumes from the job's journal). A job cancelled on this worker (`release`) goes back
 * to the queue without spending an attempt, and the next worker resumes it.
 */
export function startWorker(opts: WorkerOptions): Worker {
  const log = opts.log ?? (() => {});
  const armCache = new Map();
  const roleCache = new Map<string, Promise<RoleSet>>();
  const processor = async (job: Job, token?: string, signal?: AbortSignal): Promise<unknown> => {
    const problem = jobProblem(job.data);
    if (problem) throw new UnrecoverableError(`malformed job: ${problem}`);
    const data = job.data as JobData;
    try {
      return data.kind === 'eval'
        ? await processEvalJob(data, job.id!, { judge: evaluatorJudge, armCache, ...(opts.journal ? { journal: path.resolve(opts.journal) } : {}), ...(signal ? { signal } : {}) })
        : await processRunJob(data, { roleCache, ...(signal ? { signal } : {}) });
    } catch (err) {
      if (signal?.aborted) {
        // released (the worker is stopping now): back to the queue, its journal keeps what was done
        await job.moveToWait(token);
        log(`back  ${job.id} ${describe(job)}: put back on the queue`);
        throw new WaitingError();
      }
      if (err instanceof JobDirBusy) {
        // its folder is still in use by a live process (one that lost the job to a stall): wait, without spending an attempt
        await job.moveToDelayed(Date.now() + 1000, token);
        throw new DelayedError();
      }
      if (err instanceof UserError) throw new UnrecoverableError(err.message);
      throw err;
    }
  };
  const worker = new Worker(QUEUE_NAME, processor, {
    connection: connectionOf(opts.url),
    concurrency: opts.concurrency,
    lockDuration: opts.stallMs,
    stalledInterval: opts.stallMs,
    maxStalledCount: 5,
    name: workerName(),
  });
  const started = new Map<string, number>();
  worker.on('active', (job) => {
    started.set(job.id!, Date.now());
    log(`start ${job.id} ${describe(job)}${job.attemptsStarted > 1 ? ` (attempt ${job.attemptsStarted})` : ''}`);
  });
  worker.on('completed', (job) => log(`done  ${job.id} ${describe(job)} ${secs(started, job.id!)}`));
  worker.on('failed', (job, err) => {
    if (!job || err instanceof DelayedError || err.name === 'DelayedError') return;
    log(`fail  ${job.id} ${describe(job)}: ${errorMessage(err)}${job.attemptsMade < (job.opts.attempts ?? 1) && !(err instanceof UnrecoverableError) ? ' (will retry)' : ''}`);
  });
  let lastError = '';
  worker.on('error', (err) => {
    const msg = errorMessage(err);
    if (msg !== lastError) log(`redis: ${msg}`);
    lastError = msg;
  });
  worker.on('ready', () => (lastError = ''));
  return worker;
}

function describe(job: Job): string {
  const d = job.data as Partial<JobData> | undefined;
  if (d?.kind === 'eval' && Array.isArray(d.arms) && d.record) return `${d.record.prompt} · seed ${d.seed} · ${d.arms.map((a) => a.label).join(', ')}`;
  if (d?.kind === 'run' && d.prompt) return `prompt ${Number(d.index) + 1}: ${d.prompt}`;
  return '(malformed)';
}

const secs = (started: Map<string, number>, id: string): string => {
  const t = started.get(id);
  started.delete(id);
  return t === undefined ? '' : `${((Date.now() - t) / 1000).toFixed(1)}s`;
};
