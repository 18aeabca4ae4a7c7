import { existsSync } from 'node:fs';
import path from 'node:path';
import type { PromptRecord } from '../config/prompts.js';
import type { ConfigFile } from '../config/schema.js';
import { buildArms, type ArmSpec } from '../eval/arms.js';
import { evalUnit, evalUnits, type Judge } from '../eval/harness.js';
import { evalReport, type EvalReport, type EvalSample, type Judged } from '../eval/metrics.js';
import { SharedPoolIO, type JournalEvent } from '../eval/shared-pool.js';
import { readEvents } from '../store/run-store.js';
import { dispatch, type Dispatched, type DispatchOptions } from './dispatch.js';
import { embeddedModelsFingerprint } from '../backends/embedded/files.js';
import { takeJobDir } from './job-dir.js';
import { jobId, type EvalJob, type QueuedJob } from './jobs.js';

export interface QueuedEvalOptions extends DispatchOptions {
  url: string;
  records: PromptRecord[];
  seedsPerPrompt: (record: PromptRecord) => number;
  seed: number;
  /** the strategies as asked (`@oracle` ones included) */
  arms: ArmSpec[];
  /** eval --stop-at */
  stopAt: number[];
  budgets: number[];
  width: number;
  chainHead: 'latest' | 'best';
  verifierAuc: boolean;
  config: ConfigFile;
  /** where the journals go: a folder every worker reaches at the same path (or keeps its own, `worker --journal`) */
  work: string;
  cache?: string;
  /** which embedded models the jobs are for (default: the shipped ones', `embeddedModelsFingerprint`) */
  models?: string;
}

/**
 * One job per (prompt, run seed), in the order a one-process eval lists them: each job runs every strategy and
 * budget of its prompt and seed on one noise pool, as one process does.
 */
export function evalJobs(o: Omit<QueuedEvalOptions, 'url' | keyof DispatchOptions>): QueuedJob[] {
  const work = path.resolve(o.work);
  const models = o.models ?? embeddedModelsFingerprint();
  return evalUnits(o.records, o.seedsPerPrompt, o.seed).map(({ record, seed }) => {
    const data: EvalJob = {
      kind: 'eval',
      v: 2,
      work,
      config: o.config,
      arms: o.arms.map((a) => ({ label: a.label, strategy: a.strategy, oracle: a.oracle })),
      stopAt: o.stopAt,
      record,
      seed,
      budgets: o.budgets,
      width: o.width,
      chainHead: o.chainHead,
      verifierAuc: o.verifierAuc,
      ...(o.cache ? { cache: path.resolve(o.cache) } : {}),
      models,
    };
    return { id: jobId(data), label: `${record.prompt} · seed ${seed}`, data };
  });
}

export interface EvalJobResult {
  samples: EvalSample[];
  judged: Judged[];
}

/**
 * The eval on the queue: its report is built from the jobs' results exactly as a one-process eval builds it. Null
 * when the enqueuer was stopped (`signal`) before every job ended.
 */
export async function runQueuedEval(o: QueuedEvalOptions): Promise<{ report: EvalReport | null; dispatched: Dispatched }> {
  const started = performance.now();
  const dispatched = await dispatch(o.url, evalJobs(o), o);
  if (dispatched.stopped) return { report: null, dispatched };
  const done = dispatched.outcomes.filter((x) => x.result).map((x) => x.result as EvalJobResult);
  const labels = [...o.arms.map((a) => a.label), ...o.stopAt.flatMap((t) => o.arms.map((a) => `${a.label} stop@${t}`))];
  const report = evalReport(
    done.flatMap((r) => r.samples),
    done.flatMap((r) => r.judged),
    labels,
    o.budgets,
    performance.now() - started,
  );
  return { report, dispatched };
}

type BuiltArms = ReturnType<typeof buildArms>;

/**
 * A worker's side: the eval's roles (built once per worker and kept), the job's journal, the searches. `journal`:
 * the folder this worker keeps journals in, when it does not share the eval's.
 */
export async function processEvalJob(job: EvalJob, id: string, ctx: { judge: Judge; armCache: Map<string, BuiltArms>; journal?: string; signal?: AbortSignal }): Promise<EvalJobResult> {
  const key = JSON.stringify([job.config, job.arms, job.stopAt]);
  let built = ctx.armCache.get(key);
  if (!built) {
    built = buildArms(job.config, job.arms as ArmSpec[], job.stopAt);
    ctx.armCache.set(key, built);
    built.catch(() => ctx.armCache.delete(key));
  }
  const { arms, roles } = await built;
  const dir = path.join(ctx.journal ?? job.work, id);
  const release = takeJobDir(dir);
  try {
    const file = path.join(dir, 'events.jsonl');
    const events = existsSync(file) ? ((await readEvents(file, true)) as JournalEvent[]) : [];
    const cache = job.cache && roles.generator.identity ? { dir: job.cache, generatorKey: roles.generator.identity, prompt: job.record.prompt } : undefined;
    const pool = new SharedPoolIO(cache, { dir, events });
    return await evalUnit({
      record: job.record,
      seed: job.seed,
      arms,
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
