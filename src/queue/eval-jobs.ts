import { existsSync } from 'node:fs';
import path from 'node:path';
import type { PromptRecord } from '../config/prompts.js';
import type { ConfigFile } from '../config/schema.js';
import { buildArms, type ArmSpec } from '../eval/arms.js';
import { evalReport, evalUnit, evalUnits, type EvalArm, type EvalReport, type EvalSample, type Judge, type Judged } from '../eval/harness.js';
import { SharedPoolIO, type JournalEvent } from '../eval/shared-pool.js';
import { readEvents } from '../store/run-store.js';
import { dispatch, type DispatchProgress, type JobOutcome } from './dispatch.js';
import { takeJobDir } from './job-dir.js';
import { jobId, type EvalJob, type QueuedJob } from './jobs.js';

export interface QueuedEvalOptions {
  url: string;
  records: PromptRecord[];
  seedsPerPrompt: (record: PromptRecord) => number;
  seed: number;
  /** the arms as the eval labels them (`stop@` arms included) */
  arms: Array<ArmSpec & { stopAt?: number }>;
  budgets: number[];
  width: number;
  chainHead: 'latest' | 'best';
  verifierAuc: boolean;
  config: ConfigFile;
  /** where the journals go: a folder every worker reaches at the same path */
  work: string;
  cache?: string;
  onProgress?: (p: DispatchProgress) => void;
}

/** One job per (prompt, run seed, arm), in the order a one-process eval lists them. */
export function evalJobs(o: Omit<QueuedEvalOptions, 'url' | 'onProgress'>): QueuedJob[] {
  const work = path.resolve(o.work);
  return evalUnits(o.records, o.seedsPerPrompt, o.seed).flatMap(({ record, seed }) =>
    o.arms.map((arm) => {
      const data: EvalJob = {
        kind: 'eval',
        v: 1,
        work,
        config: o.config,
        arm: { label: arm.label, strategy: arm.strategy, oracle: arm.oracle, ...(arm.stopAt !== undefined ? { stopAt: arm.stopAt } : {}) },
        record,
        seed,
        budgets: o.budgets,
        width: o.width,
        chainHead: o.chainHead,
        verifierAuc: o.verifierAuc,
        ...(o.cache ? { cache: path.resolve(o.cache) } : {}),
      };
      return { id: jobId(data), label: `${arm.label} · ${record.prompt} · seed ${seed}`, data };
    }),
  );
}

export interface EvalJobResult {
  samples: EvalSample[];
  judged: Judged[];
}

/** The eval on the queue: its report is built from the jobs' results exactly as a one-process eval builds it. */
export async function runQueuedEval(o: QueuedEvalOptions): Promise<{ report: EvalReport; outcomes: JobOutcome[] }> {
  const started = performance.now();
  const outcomes = await dispatch(o.url, evalJobs(o), o.onProgress ? { onProgress: o.onProgress } : {});
  const done = outcomes.filter((x) => x.result).map((x) => x.result as EvalJobResult);
  const report = evalReport(
    done.flatMap((r) => r.samples),
    done.flatMap((r) => r.judged),
    o.arms.map((a) => a.label),
    o.budgets,
    performance.now() - started,
  );
  return { report, outcomes };
}

/** A worker's side: the arm's roles (built once per worker and kept), the job's journal, the searches. */
export async function processEvalJob(job: EvalJob, id: string, ctx: { judge: Judge; armCache: Map<string, Promise<{ arm: EvalArm; roles: Awaited<ReturnType<typeof buildArms>>['roles'] }>>; signal?: AbortSignal }): Promise<EvalJobResult> {
  const key = JSON.stringify([job.config, job.arm.strategy, job.arm.oracle]);
  let built = ctx.armCache.get(key);
  if (!built) {
    built = buildArms(job.config, [{ label: job.arm.label, strategy: job.arm.strategy as ArmSpec['strategy'], oracle: job.arm.oracle }]).then((b) => ({ arm: b.arms[0]!, roles: b.roles }));
    ctx.armCache.set(key, built);
    built.catch(() => ctx.armCache.delete(key));
  }
  const { arm: base, roles } = await built;
  const arm: EvalArm = { ...base, label: job.arm.label, ...(job.arm.stopAt !== undefined ? { stopAt: job.arm.stopAt } : {}) };
  const dir = path.join(job.work, id);
  const release = takeJobDir(dir);
  try {
    const file = path.join(dir, 'events.jsonl');
    const events = existsSync(file) ? ((await readEvents(file, true)) as JournalEvent[]) : [];
    const cache = job.cache && roles.generator.identity ? { dir: job.cache, generatorKey: roles.generator.identity, prompt: job.record.prompt } : undefined;
    const pool = new SharedPoolIO(cache, { dir, events });
    return await evalUnit({
      record: job.record,
      seed: job.seed,
      arms: [arm],
      budgets: job.budgets,
      roles,
      judge: ctx.judge,
      width: job.width,
      chainHead: job.chainHead,
      verifierAuc: job.verifierAuc,
      ...(job.config.prices ? { prices: job.config.prices } : {}),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      pool,
    });
  } finally {
    release();
  }
}
