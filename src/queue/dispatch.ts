import { QueueEvents, type Job, type Queue } from 'bullmq';
import { errorMessage } from '../core/errors.js';
import { connectionOf, openQueue, QUEUE_NAME } from './connection.js';
import type { QueuedJob } from './jobs.js';

/** A week: how long a finished job waits in Redis for an enqueuer that never came back to collect it. */
const UNCOLLECTED_S = 7 * 24 * 3600;

/**
 * How each job is kept: retried with backoff; once it ends it stays in Redis until its enqueuer has collected its
 * result and written it down (then it removes the job, `removeJobs`); one nobody collects goes a week after it ended.
 */
export const JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { age: UNCOLLECTED_S },
  removeOnFail: { age: UNCOLLECTED_S },
} as const;

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
  /** starts beyond each job's first: after a failure, a worker that died or stopped, a busy folder */
  retried: number;
  /** jobs Redis no longer had (it restarted empty) and that were added again */
  readded: number;
  /** set while Redis does not answer */
  waitingForRedis?: string;
}

export interface DispatchOptions {
  onProgress?: (p: DispatchProgress) => void;
  /**
   * Stop waiting: the jobs no worker has started are taken off the queue; the running ones finish on their workers
   * and stay in Redis, so that the same jobs enqueued again are collected (and the removed ones resumed).
   */
  signal?: AbortSignal;
  /** how often the state of every job not ended is read, for what the events missed (default 5 s) */
  reconcileMs?: number;
}

export interface Dispatched {
  /** the jobs that ended, in the order given */
  outcomes: JobOutcome[];
  progress: DispatchProgress;
  /** the workers that finished jobs */
  workers: string[];
  /** set when `signal` stopped the wait: jobs taken off the queue, jobs left running on workers */
  stopped?: { removed: number; running: number };
}

/**
 * Put the jobs on the queue and wait until each one has completed or failed for good, following the queue's events
 * (BullMQ's QueueEvents) for progress. Adding is idempotent: a job the queue already has is not added twice (a job
 * that failed before is retried); a job that vanishes (Redis restarted without its data) is added again, and its
 * worker resumes it from its journal.
 */
export async function dispatch(url: string, jobs: QueuedJob[], opts: DispatchOptions = {}): Promise<Dispatched> {
  const queue = await openQueue(url);
  const events = new QueueEvents(QUEUE_NAME, { connection: connectionOf(url) });
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const outcomes = new Map<string, JobOutcome>();
  const starts = new Map<string, number>();
  const active = new Set<string>();
  const progress: DispatchProgress = { done: 0, failed: 0, active: 0, total: jobs.length, retried: 0, readded: 0 };
  let wake = () => {};
  const report = () => {
    progress.active = active.size;
    progress.retried = [...starts.values()].reduce((n, s) => n + Math.max(0, s - 1), 0);
    opts.onProgress?.({ ...progress });
  };

  const settle = async (id: string, state?: string): Promise<void> => {
    const j = byId.get(id);
    if (!j || outcomes.has(id)) return;
    const job = (await queue.getJob(id)) as Job | undefined;
    state ??= await job?.getState();
    if (!job || (state !== 'completed' && state !== 'failed') || outcomes.has(id)) return;
    const attempts = Math.max(1, job.attemptsStarted ?? job.attemptsMade, starts.get(id) ?? 0);
    const out: JobOutcome = { id, label: j.label, attempts, ...(job.processedBy ? { worker: job.processedBy } : {}) };
    if (state === 'completed') out.result = job.returnvalue;
    else out.error = job.failedReason || 'failed without a reason';
    outcomes.set(id, out);
    starts.set(id, attempts);
    active.delete(id);
    if (state === 'completed') progress.done++;
    else progress.failed++;
    report();
    if (outcomes.size === jobs.length) wake();
  };
  const settleQuietly = (id: string) => void settle(id).catch(() => {}); // the next reconcile reads it again
  events.on('active', ({ jobId }) => {
    if (!byId.has(jobId) || outcomes.has(jobId)) return;
    active.add(jobId);
    starts.set(jobId, (starts.get(jobId) ?? 0) + 1);
    report();
  });
  for (const back of ['waiting', 'delayed', 'stalled'] as const) events.on(back, ({ jobId }: { jobId: string }) => active.delete(jobId) && report());
  events.on('completed', ({ jobId }) => settleQuietly(jobId));
  events.on('failed', ({ jobId }) => settleQuietly(jobId));
  events.on('error', () => {}); // the reconcile says when Redis is away

  /** Read every pending job's state: settle the ended ones the events missed, add again the ones Redis lost. */
  const reconcile = async (): Promise<void> => {
    try {
      const pending = jobs.filter((j) => !outcomes.has(j.id));
      const states = await Promise.all(pending.map((j) => queue.getJobState(j.id)));
      const lost = pending.filter((_, i) => states[i] === 'unknown');
      active.clear();
      for (const [i, state] of states.entries()) if (state === 'active') active.add(pending[i]!.id);
      for (const [i, state] of states.entries()) if (state === 'completed' || state === 'failed') await settle(pending[i]!.id, state);
      if (lost.length) {
        await add(queue, lost);
        progress.readded += lost.length;
      }
      delete progress.waitingForRedis;
    } catch (err) {
      progress.waitingForRedis = errorMessage(err);
    }
    report();
  };

  const onAbort = () => wake();
  opts.signal?.addEventListener('abort', onAbort);
  try {
    await events.waitUntilReady(); // listening before the jobs go on: no event is missed
    await add(queue, jobs);
    for (const j of jobs) {
      const existing = await queue.getJob(j.id);
      if (existing && (await existing.getState()) === 'failed') await (existing as Job).retry('failed');
    }
    while (outcomes.size < jobs.length && !opts.signal?.aborted) {
      await reconcile();
      if (outcomes.size === jobs.length || opts.signal?.aborted) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, opts.reconcileMs ?? 5000);
        wake = () => (clearTimeout(t), resolve());
      });
    }
    const stopped = opts.signal?.aborted && outcomes.size < jobs.length ? await takeOffQueue(queue, jobs.filter((j) => !outcomes.has(j.id))) : undefined;
    const ended = jobs.map((j) => outcomes.get(j.id)).filter((o): o is JobOutcome => o !== undefined);
    return {
      outcomes: ended,
      progress: { ...progress },
      workers: [...new Set(ended.flatMap((o) => (o.worker ? [o.worker] : [])))].sort(),
      ...(stopped ? { stopped } : {}),
    };
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await events.close().catch(() => {});
    await queue.close().catch(() => {});
  }
}

/** The jobs no worker has started are removed (BullMQ refuses to remove a job a worker holds); the rest are counted. */
async function takeOffQueue(queue: Queue, pending: QueuedJob[]): Promise<{ removed: number; running: number }> {
  let removed = 0;
  let running = 0;
  for (const j of pending) {
    const state = await queue.getJobState(j.id);
    if (state === 'waiting' || state === 'delayed' || state === 'prioritized') removed += await queue.remove(j.id);
    if (state === 'active') running++;
  }
  return { removed, running };
}

/** Once their results are written down, the jobs leave Redis (a job a worker holds again is left to age out). */
export async function removeJobs(url: string, ids: string[]): Promise<void> {
  const queue = await openQueue(url);
  try {
    for (const id of ids) await queue.remove(id);
  } finally {
    await queue.close().catch(() => {});
  }
}

async function add(queue: Queue, jobs: QueuedJob[]): Promise<void> {
  for (let i = 0; i < jobs.length; i += 500) {
    await queue.addBulk(jobs.slice(i, i + 500).map((j) => ({ name: j.data.kind, data: j.data, opts: { ...JOB_OPTIONS, jobId: j.id } })));
  }
}
