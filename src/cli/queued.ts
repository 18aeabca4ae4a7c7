import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { PromptRecord } from '../config/prompts.js';
import type { ConfigFile } from '../config/schema.js';
import type { ArmSpec } from '../eval/arms.js';
import type { EvalReport } from '../eval/metrics.js';
import { dispatch, removeJobs, type Dispatched, type DispatchOptions, type DispatchProgress, type JobOutcome } from '../queue/dispatch.js';
import { runQueuedEval } from '../queue/eval-jobs.js';
import type { SearchParams } from '../core/types.js';
import { runJobs, type RunJobResult } from '../queue/run-jobs.js';
import { readRunRecord, type RunOutcome } from '../run.js';
import type { BatchStore } from '../store/batch.js';
import type { RunRecord } from '../store/types.js';
import { Interrupted, RunIncomplete } from '../core/errors.js';
import { interruptible, printSummary, summaryJson, writeGeneval } from './actions/run.js';
import type { RunFlags } from './commands/run.js';

/** `queue: 4/12 jobs done, 1 failed, 2 running, 1 retried` (and re-added, when Redis lost some). */
const countsLine = (p: DispatchProgress): string =>
  `${p.done}/${p.total} jobs done, ${p.failed} failed, ${p.active} running, ${p.retried} retried${p.readded ? `, ${p.readded} re-added` : ''}`;

/** Progress of queued jobs on stderr: a line when something changed, at most every 2 s (and the last one). */
export function queueProgress(quiet: boolean): (p: DispatchProgress) => void {
  const started = Date.now();
  let last = 0;
  let lastLine = '';
  return (p) => {
    if (quiet) return;
    const line = p.waitingForRedis ? `queue: waiting for Redis (${p.waitingForRedis})` : `queue: ${countsLine(p)}`;
    const now = Date.now();
    const finished = p.done + p.failed === p.total;
    if (line === lastLine) return;
    if (!finished && now - last < 2000) return;
    last = now;
    lastLine = line;
    process.stderr.write(`${line}  ${((now - started) / 1000).toFixed(0)}s\n`);
  };
}

/** The summary's line about the queue: how the jobs ended and on how many workers. */
export function queueSummary(d: Dispatched): string {
  return `queue: ${countsLine({ ...d.progress, active: 0 }).replace(', 0 running', '')} on ${d.workers.length} worker${d.workers.length === 1 ? '' : 's'}\n`;
}

/** queue.log: one line per job, how it ended, where and after how many attempts; a failed job's reason. */
export function queueLog(outcomes: JobOutcome[]): string {
  return outcomes
    .map((o) => `${o.error ? 'failed' : 'done  '} ${o.id} ${o.label} (${o.attempts} attempt${o.attempts === 1 ? '' : 's'}${o.worker ? `, ${o.worker}` : ''})${o.error ? `: ${o.error}` : ''}`)
    .join('\n') + '\n';
}

/**
 * Dispatch with Ctrl-C: the enqueuer says it is stopping, takes the jobs not started off the queue, leaves the
 * running ones to their workers (their results stay in Redis) and exits 130; the same command again resumes.
 */
async function dispatchStoppably<T extends { dispatched: Dispatched }>(run: (o: DispatchOptions) => Promise<T>, quiet: boolean, again: string): Promise<T> {
  const stop = interruptible('stopping… taking the jobs not started off the queue; running ones finish on their workers');
  let out: T;
  try {
    out = await run({ signal: stop.signal, onProgress: queueProgress(quiet) });
  } finally {
    stop.dispose();
  }
  const s = out.dispatched.stopped;
  if (s) {
    throw new Interrupted(
      `interrupted: ${s.removed} job${s.removed === 1 ? '' : 's'} taken off the queue, ${s.running} left running on workers, ${out.dispatched.outcomes.length} ended; continue with: ${again}`,
    );
  }
  return out;
}

export interface QueuedEvalInput {
  records: PromptRecord[];
  seeds: (r: PromptRecord) => number;
  arms: ArmSpec[];
  stopAt: number[];
  config: ConfigFile;
  out: string;
  budgets: number[];
  width: number;
  seed: number;
  chainHead: 'latest' | 'best';
  auc: boolean;
  quiet: boolean;
  cache?: string;
}

/**
 * `eval --queue`: the jobs' report; once written (`finish`), the log beside the table, the queue's line of the
 * summary, the jobs removed from Redis, and exit 3 when some job failed.
 */
export async function queuedEval(url: string, o: QueuedEvalInput): Promise<{ report: EvalReport; finish(dir: string): Promise<void> }> {
  const { report, dispatched } = await dispatchStoppably(
    (d) =>
      runQueuedEval({
        ...d,
        url,
        records: o.records,
        seedsPerPrompt: o.seeds,
        seed: o.seed,
        arms: o.arms,
        stopAt: o.stopAt,
        budgets: o.budgets,
        width: o.width,
        chainHead: o.chainHead,
        verifierAuc: o.auc,
        config: o.config,
        work: path.join(o.out, 'queue'),
        ...(o.cache ? { cache: o.cache } : {}),
      }),
    o.quiet,
    'the same eval command',
  );
  const { outcomes } = dispatched;
  const failed = outcomes.filter((x) => x.error);
  return {
    report: report!,
    async finish(dir) {
      writeFileSync(path.join(dir, 'queue.log'), queueLog(outcomes));
      if (failed.length) {
        appendFileSync(path.join(dir, 'table.md'), `\n${failed.length} of ${outcomes.length} jobs failed and are not in the table; queue.log gives each one's reason.\n`);
      }
      process.stdout.write(queueSummary(dispatched));
      await removeJobs(url, outcomes.map((x) => x.id));
      if (!failed.length) return;
      throw new RunIncomplete(
        `${failed.length} of ${outcomes.length} jobs failed (${failed[0]!.label}: ${failed[0]!.error}); every reason is in ${path.join(dir, 'queue.log')}; run the same command again to retry them`,
      );
    },
  };
}

/**
 * `run --prompts … --queue` (and `run --resume <batchDir> --queue`): one job per prompt not done yet; then the
 * batch record says where each run is, and each summary is printed as a one-process batch prints it.
 */
export async function queuedBatch(url: string, batch: BatchStore, o: { params: SearchParams; config: ConfigFile; size: number | undefined; flags: RunFlags }): Promise<void> {
  const { flags } = o;
  const b = batch.batch;
  const jobs = runJobs({ batchDir: batch.dir, prompts: b.prompts, params: o.params, config: o.config, ...(o.size ? { size: o.size } : {}), report: flags.report });
  const again = `reflectionflow run --resume ${batch.dir} --queue ${url}`;
  const { dispatched } = await dispatchStoppably(async (d) => ({ dispatched: await dispatch(url, jobs, d) }), Boolean(flags.quiet || flags.json), again);
  const { outcomes } = dispatched;
  writeFileSync(path.join(batch.dir, 'queue.log'), queueLog(outcomes));
  const runs: Array<{ dir: string; run: RunRecord; failures?: string }> = [];
  for (const out of outcomes) {
    const i = jobs.findIndex((j) => j.id === out.id);
    const r = out.result as RunJobResult | undefined;
    if (!r) continue;
    if (!existsSync(r.dir)) {
      throw new Error(`${out.label}: its run directory ${r.dir} is not on this machine: the workers of run --prompts --queue must write into the batch folder (a shared folder at the same path)`);
    }
    const run = await readRunRecord(r.dir);
    batch.setRun(i, r.dir, run.status);
    runs.push({ dir: r.dir, run, ...(r.failures ? { failures: r.failures } : {}) });
    const prompt = b.prompts[i]!;
    await writeGeneval(flags, i, { prompt: prompt.prompt, ...(prompt.record ? { record: prompt.record } : {}) }, run);
    if (!flags.json) printSummary({ dir: r.dir, run, failures: [] } as unknown as RunOutcome, jobs.length > 1 ? `[${i + 1}/${jobs.length}]` : '');
  }
  if (flags.json) process.stdout.write(JSON.stringify(runs.map(summaryJson), null, 2) + '\n');
  else process.stdout.write(`${queueSummary(dispatched)}batch: ${batch.dir}\n`);
  await removeJobs(url, outcomes.map((x) => x.id));
  const failed = outcomes.filter((x) => x.error);
  if (failed.length) {
    throw new RunIncomplete(
      `${failed.length} of ${outcomes.length} prompts failed (${failed[0]!.label}: ${failed[0]!.error}); every reason is in ${path.join(batch.dir, 'queue.log')}; retry with: ${again}`,
    );
  }
  const incomplete = runs.filter((r) => r.run.status === 'incomplete');
  if (incomplete.length) {
    throw new RunIncomplete(
      `${incomplete.length === 1 ? 'a run is' : `${incomplete.length} runs are`} incomplete: ${incomplete.map((r) => r.failures ?? r.run.error).join(' | ')}; retry the failed calls with: ${again}`,
    );
  }
}
