import { readdirSync, existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { PromptRecord } from '../config/prompts.js';
import type { ConfigFile } from '../config/schema.js';
import type { RoleSet } from '../core/roles.js';
import type { SearchParams } from '../core/types.js';
import { doneRun, failureSummary, rolesFor, runBatchPrompt } from '../run.js';
import { RUN_FILE } from '../store/run-store.js';
import type { RunStatus } from '../store/types.js';
import { takeJobDir } from './job-dir.js';
import { jobId, type QueuedJob, type RunJob } from './jobs.js';

/** One job per prompt of a batch; prompt i's run directory goes under `<batchDir>/p<i>/`. */
export function runJobs(o: {
  batchDir: string;
  prompts: Array<{ prompt: string; record?: PromptRecord }>;
  params: SearchParams;
  config: ConfigFile;
  size?: number;
  report: boolean;
}): QueuedJob[] {
  return o.prompts.map((p, index) => {
    const data: RunJob = {
      kind: 'run',
      v: 1,
      dir: path.join(path.resolve(o.batchDir), `p${String(index).padStart(5, '0')}`),
      index,
      prompt: p.prompt,
      ...(p.record ? { record: p.record } : {}),
      params: o.params as RunJob['params'],
      config: o.config,
      ...(o.size ? { size: o.size } : {}),
      report: o.report,
    };
    return { id: jobId(data), label: `[${index + 1}/${o.prompts.length}] ${p.prompt}`, data };
  });
}

export interface RunJobResult {
  dir: string;
  status: RunStatus;
  /** the failed calls, when the run is incomplete */
  failures?: string;
}

/**
 * A worker's side: the prompt's run, resumed from its events when an earlier attempt started it (a run already done
 * is kept as it is).
 */
export async function processRunJob(job: RunJob, ctx: { roleCache: Map<string, Promise<RoleSet>>; signal?: AbortSignal }): Promise<RunJobResult> {
  const key = JSON.stringify([job.config, job.params.strategy]);
  let roles = ctx.roleCache.get(key);
  if (!roles) {
    roles = rolesFor(job.config, job.params.strategy);
    ctx.roleCache.set(key, roles);
    roles.catch(() => ctx.roleCache.delete(key));
  }
  const release = takeJobDir(job.dir);
  try {
    const runs = readdirSync(job.dir, { withFileTypes: true }).filter((e) => e.isDirectory());
    // a directory without run.json is a run whose process died while creating it: nothing in it to keep
    for (const e of runs) if (!existsSync(path.join(job.dir, e.name, RUN_FILE))) rmSync(path.join(job.dir, e.name), { recursive: true, force: true });
    const existing = runs.map((e) => path.join(job.dir, e.name)).find((d) => existsSync(path.join(d, RUN_FILE)));
    if (existing && (await doneRun(existing))) return { dir: existing, status: 'done' };
    const outcome = await runBatchPrompt({
      existing,
      prompt: job.prompt,
      record: job.record,
      params: job.params,
      roles: await roles,
      outDir: job.dir,
      config: job.config,
      size: job.size,
      signal: ctx.signal,
      report: job.report,
      prices: job.config.prices,
    });
    return { dir: outcome.dir, status: outcome.run.status, ...(outcome.failures.length ? { failures: failureSummary(outcome.failures) } : {}) };
  } finally {
    release();
  }
}
