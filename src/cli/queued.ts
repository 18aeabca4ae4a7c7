import { appendFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { PromptRecord } from '../config/prompts.js';
import type { ConfigFile } from '../config/schema.js';
import type { ArmSpec } from '../eval/arms.js';
import type { EvalArm, EvalReport } from '../eval/harness.js';
import type { DispatchProgress, JobOutcome } from '../queue/dispatch.js';
import { runQueuedEval } from '../queue/eval-jobs.js';
import type { SearchParams } from '../core/types.js';
import { dispatch } from '../queue/dispatch.js';
import { runJobs, type RunJobResult } from '../queue/run-jobs.js';
import type { RunOutcome } from '../run.js';
import type { BatchStore } from '../store/batch.js';
import { readRunRecord } from '../store/run-store.js';
import type { RunRecord } from '../store/types.js';
import { printSummary, RunIncomplete, summaryJson, writeGeneval, type RunFlags } from './commands/run.js';

/** Progress of queued jobs on stderr: a line when something changed, at most every 2 s (and the last one). */
export function queueProgress(quiet: boolean): (p: DispatchProgress) => void {
  const started = Date.now();
  let last = 0;
  let lastLine = '';
  return (p) => {
    if (quiet) return;
    const line = p.waitingForRedis
      ? `queue: waiting for Redis (${p.waitingForRedis})`
      : `queue: ${p.done}/${p.total} jobs done, ${p.failed} failed, ${p.active} running${p.retries ? `, ${p.retries} retried` : ''}${p.readded ? `, ${p.readded} re-added` : ''}`;
    const now = Date.now();
    const finished = p.done + p.failed === p.total;
    if (line === lastLine && !finished) return;
    if (!finished && now - last < 2000) return;
    last = now;
    lastLine = line;
    process.stderr.write(`${line}  ${((now - started) / 1000).toFixed(0)}s\n`);
  };
}

/** queue.log: one line per job, how it ended, where and after how many attempts; a failed job's reason. */
export function queueLog(outcomes: JobOutcome[]): string {
  return outcomes
    .map((o) => `${o.error ? 'failed' : 'done  '} ${o.id} ${o.label} (${o.attempts} attempt${o.attempts === 1 ? '' : 's'}${o.worker ? `, ${o.worker}` : ''})${o.error ? `: ${o.error}` : ''}`)
    .join('\n') + '\n';
}

export interface QueuedEvalInput {
  records: PromptRecord[];
  seeds: (r: PromptRecord) => number;
  arms: ArmSpec[];
  evalArms: EvalArm[];
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

/** `eval --queue`: the jobs' report, then the log beside the table and exit 3 when some job failed. */
export async function queuedEval(url: string, o: QueuedEvalInput): Promise<{ report: EvalReport; writeLog(dir: string): void; throwIfFailed(dir: string): void }> {
  const { report, outcomes } = await runQueuedEval({
    url,
    records: o.records,
    seedsPerPrompt: o.seeds,
    seed: o.seed,
    arms: o.evalArms.map((a) => ({ label: a.label, strategy: a.strategy, oracle: a.verifierScope === 'oracle', ...(a.stopAt !== undefined ? { stopAt: a.stopAt } : {}) })),
    budgets: o.budgets,
    width: o.width,
    chainHead: o.chainHead,
    verifierAuc: o.auc,
    config: o.config,
    work: path.join(o.out, 'queue'),
    ...(o.cache ? { cache: o.cache } : {}),
    onProgress: queueProgress(o.quiet),
  });
  const failed = outcomes.filter((x) => x.error);
  return {
    report,
    writeLog(dir) {
      writeFileSync(path.join(dir, 'queue.log'), queueLog(outcomes));
      if (failed.length) {
        appendFileSync(path.join(dir, 'table.md'), `\n${failed.length} of ${outcomes.length} jobs failed and are not in the table; queue.log gives each one's reason.\n`);
      }
    },
    throwIfFailed(dir) {
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
  const outcomes = await dispatch(url, jobs, { onProgress: queueProgress(Boolean(flags.quiet || flags.json)) });
  writeFileSync(path.join(batch.dir, 'queue.log'), queueLog(outcomes));
  const runs: Array<{ dir: string; run: RunRecord; failures?: string }> = [];
  for (const [i, out] of outcomes.entries()) {
    const r = out.result as RunJobResult | undefined;
    if (!r) continue;
    const run = await readRunRecord(r.dir);
    batch.setRun(i, r.dir, run.status);
    runs.push({ dir: r.dir, run, ...(r.failures ? { failures: r.failures } : {}) });
    const prompt = b.prompts[i]!;
    await writeGeneval(flags, i, { prompt: prompt.prompt, ...(prompt.record ? { record: prompt.record } : {}) }, run);
    if (!flags.json) printSummary({ dir: r.dir, run, failures: [] } as unknown as RunOutcome, jobs.length > 1 ? `[${i + 1}/${jobs.length}]` : '');
  }
  if (flags.json) process.stdout.write(JSON.stringify(runs.map(summaryJson), null, 2) + '\n');
  else process.stdout.write(`batch: ${batch.dir}\n`);
  const failed = outcomes.filter((x) => x.error);
  if (failed.length) {
    throw new RunIncomplete(
      `${failed.length} of ${outcomes.length} prompts failed (${failed[0]!.label}: ${failed[0]!.error}); every reason is in ${path.join(batch.dir, 'queue.log')}; retry with: reflectionflow run --resume ${batch.dir} --queue ${url}`,
    );
  }
  const incomplete = runs.filter((r) => r.run.status === 'incomplete');
  if (incomplete.length) {
    throw new RunIncomplete(
      `${incomplete.length === 1 ? 'a run is' : `${incomplete.length} runs are`} incomplete: ${incomplete.map((r) => r.failures ?? r.run.error).join(' | ')}; retry the failed calls with: reflectionflow run --resume ${batch.dir} --queue ${url}`,
    );
  }
}
