import path from 'node:path';
import { loadConfigFile, redactSecrets } from '../../config/load.js';
import { loadPromptFile, metaOf, type PromptRecord } from '../../config/prompts.js';
import { absoluteBackends, buildRoles, inputChecks, planRoles, resolveParams, type RolePlan } from '../../config/resolve.js';
import type { ConfigFile } from '../../config/schema.js';
import { Interrupted, RoleFailing, RunIncomplete, UserError } from '../../core/errors.js';
import { builtInNote } from '../../core/prices.js';
import type { SearchParams } from '../../core/types.js';
import {
  checkSearch,
  DEFAULT_WAVE,
  doneRun,
  failureSummary,
  makePlan,
  readRunRecord,
  resumeRunDir,
  rolesFor,
  runBatchPrompt,
  type CheckedSearch,
  type RunOutcome,
} from '../../run.js';
import { paramsForBudget } from '../../eval/budget.js';
import { BatchStore, readBatchRecord } from '../../store/batch.js';
import { checkOutputDir, makeOutputDir } from '../../store/dirs.js';
import type { RunRecord } from '../../store/types.js';
import { checkRungs, rungChoices, rungFolder, writeGenevalPrompt } from '../../eval/geneval-layout.js';
import { DEFAULT_UI_PORT } from '../../ui/defaults.js';
import type { RunFlags } from '../commands/run.js';
import type { RunningUi } from '../../ui/server.js';
import { untilSignal } from '../until-signal.js';
import { Progress } from '../progress.js';

// BullMQ and Redis load only for --queue
const queued = () => import('../queued.js');

interface Job {
  prompt: string;
  record?: PromptRecord;
}

/** Flags that choose what a new run does; a resumed run keeps its own. */
const NEW_RUN_FLAGS = ['strategy', 'budget', 'samples', 'width', 'depth', 'seed', 'maxImages', 'budgetLimit', 'stopAt', 'wave', 'chainHead', 'backend', 'config', 'out', 'prompts', 'size'] as const;
const flagName = (k: string): string => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

export async function runAction(promptArg: string | undefined, flags: RunFlags): Promise<void> {
  if (flags.resume) {
    if (promptArg !== undefined) throw new UserError(`--resume continues the run's own prompt; drop the prompt '${promptArg}'`);
    const given = NEW_RUN_FLAGS.filter((k) => flags[k] !== undefined);
    if (given.length) throw new UserError(`--resume continues a run with its own settings; drop ${given.map(flagName).join(', ')}`);
    if (flags.ui !== undefined) throw new UserError('--ui watches a new run; to watch a resumed one, start `reflectionflow ui` and resume it from the page');
    return resumeAction(flags);
  }

  // everything the user gave is checked before anything is written
  if (flags.ui !== undefined && flags.prompts) throw new UserError('--ui watches a single run; for a batch, start `reflectionflow ui --runs <batchDir>`');
  const config: ConfigFile = flags.config ? loadConfigFile(flags.config).config : {};
  if (flags.backend) config.backend = flags.backend;
  // module paths are kept absolute in run.json, so that a resume from another folder finds them
  absoluteBackends(config);
  const jobs = collectJobs(promptArg, flags.prompts);
  if (flags.genevalOut && !flags.prompts) throw new UserError('--geneval-out needs --prompts <evaluation_metadata.jsonl>');
  if (flags.genevalRungs && !flags.genevalOut) throw new UserError('--geneval-rungs needs --geneval-out <dir>');
  if (flags.queue && !flags.prompts) throw new UserError('--queue runs a batch: give --prompts <file.jsonl>');
  if (flags.budget !== undefined && (flags.samples !== undefined || flags.depth !== undefined)) {
    throw new UserError('give --budget, or --samples and --depth, not both (--budget splits itself; --width sets its chains)');
  }
  const split = flags.budget !== undefined ? budgetSplit(config, flags) : {};
  const params = resolveParams(config, {
    strategy: flags.strategy,
    samples: flags.samples,
    width: flags.width,
    depth: flags.depth,
    ...split,
    seed: flags.seed,
    maxImages: flags.maxImages,
    chainHead: flags.chainHead,
    stopAt: flags.stopAt,
    wave: flags.wave,
  }, flags.budgetLimit);
  if (flags.genevalRungs) checkRungs(flags.genevalRungs, makePlan(params).budget);
  const rolePlans = planRoles(config, params.strategy);
  const size = flags.size ?? config.size;
  const outDir = flags.out ?? config.out ?? 'runs';
  // what the backends can check before their roles are made (the embedded models' cards): no wait for models to load
  const early = inputChecks(rolePlans);
  if (size !== undefined) early.size(size);
  checkPrompts(jobs, (job) => early.prompt(job.prompt));
  // the folders are made only once everything is checked, but whether they can be is known now
  checkOutputDir(outDir);
  if (flags.genevalOut) checkOutputDir(flags.genevalOut, '--geneval-out folder');

  if (flags.dryRun) {
    printPlan(jobs, params, rolePlans, outDir, flags.json);
    return;
  }

  const roles = await buildRoles(rolePlans);
  // every prompt is checked before the first run directory (or the --geneval-out folder) is made, and only then
  const checked = checkPrompts(jobs, (job) => checkSearch({ prompt: job.prompt, ...(job.record ? { meta: metaOf(job.record) } : {}), params, roles, ...(size ? { size } : {}) }));
  if (flags.genevalOut) makeOutputDir(flags.genevalOut, '--geneval-out folder');
  const stored = redactSecrets({ ...config, search: params, ...(size ? { size } : {}) });
  // a prompt file is a batch: its own directory and manifest, so that `--resume <batchDir>` can finish it
  const batch = flags.prompts
    ? BatchStore.create(outDir, {
        source: flags.prompts,
        params,
        config: stored,
        ...(size ? { size } : {}),
        prompts: jobs.map((j) => ({ prompt: j.prompt, ...(j.record ? { record: j.record } : {}), dir: null, status: 'pending' as const })),
      })
    : null;
  if (batch && flags.queue) return (await queued()).queuedBatch(flags.queue, batch, { params, config: stored as ConfigFile, size, flags });
  // loaded only when asked for: most runs need no web server
  const ui = flags.ui !== undefined ? await (await import('../../ui/server.js')).startUi({ runs: outDir, port: flags.ui === true ? DEFAULT_UI_PORT : flags.ui }) : undefined;
  if (!ui) return executeJobs(jobs, batch, { params, roles, config: stored, outDir, size, prices: config.prices, flags, checked });
  try {
    await executeJobs(jobs, batch, { params, roles, config: stored, outDir, size, prices: config.prices, flags, checked, ui });
  } catch (err) {
    if (!(err instanceof RunIncomplete)) {
      await ui.close();
      throw err;
    }
    await keepUi(ui);
    throw err;
  }
  await keepUi(ui);
}

/** Check every job (what `check` returns, in order); in a batch, the refusal names the prompt. */
function checkPrompts<T>(jobs: Job[], check: (job: Job) => T): T[] {
  return jobs.map((job, i) => {
    try {
      return check(job);
    } catch (err) {
      if (err instanceof UserError && jobs.length > 1) throw new UserError(`prompt ${i + 1} ('${job.prompt}'): ${err.message}`);
      throw err;
    }
  });
}

/** After a run watched with --ui: the page stays up until Ctrl-C. */
async function keepUi(ui: RunningUi): Promise<void> {
  process.stderr.write(`the run is over; the live view stays at ${ui.url} until Ctrl-C\n`);
  await untilSignal(() => ui.close());
}

interface JobContext {
  params: SearchParams;
  roles: Awaited<ReturnType<typeof buildRoles>>;
  config: unknown;
  outDir: string;
  size: number | undefined;
  prices: ConfigFile['prices'];
  flags: RunFlags;
  /** the live web view watching the run (run --ui) */
  ui?: RunningUi;
  /** each job's search, checked before the first run directory was made */
  checked?: CheckedSearch[];
}

/**
 * Run the jobs in order — each a new run, or in a batch being resumed, the resumption of the run it started (a run
 * already done is kept as it is) — printing each summary; then the JSON summary and the exit status.
 */
async function executeJobs(jobs: Job[], batch: BatchStore | null, ctx: JobContext): Promise<void> {
  const { flags } = ctx;
  const controller = interruptible();
  const outcomes: Array<Pick<RunOutcome, 'dir' | 'run'> & { failures?: RunOutcome['failures'] }> = [];
  let current = '';
  try {
    for (const [i, job] of jobs.entries()) {
      const label = jobs.length > 1 ? `[${i + 1}/${jobs.length}]` : '';
      const existing = batch?.runDir(i) ?? null;
      if (existing) {
        const run = await doneRun(existing);
        if (run) {
          batch!.setRun(i, existing, 'done');
          outcomes.push({ dir: existing, run });
          await writeGeneval(flags, i, job, run);
          if (!flags.json) process.stdout.write(`${label} ${run.prompt}\n  done before: ${existing}\n`);
          continue;
        }
      }
      const progress = new Progress(makePlan(ctx.params).budget, label || 'run', flags.quiet || flags.json);
      try {
        current = existing ?? '';
        const outcome = await runBatchPrompt({
          existing,
          prompt: job.prompt,
          record: job.record,
          params: ctx.params,
          roles: ctx.roles,
          outDir: batch?.dir ?? ctx.outDir,
          config: ctx.config,
          size: ctx.size,
          signal: controller.signal,
          onCall: progress.onCall,
          report: flags.report,
          prices: ctx.prices,
          checked: ctx.checked?.[i],
          onCreated: (dir) => {
            current = dir;
            if (ctx.ui) process.stderr.write(`live view: ${ctx.ui.url}#/run/${path.basename(dir)}\n`);
            batch?.setRun(i, dir, 'running');
          },
        });
        batch?.setRun(i, outcome.dir, outcome.run.status);
        outcomes.push(outcome);
        await writeGeneval(flags, i, job, outcome.run);
      } catch (err) {
        if (batch && current) batch.setRun(i, current, controller.signal.aborted ? 'interrupted' : err instanceof RoleFailing ? 'incomplete' : 'failed');
        throw err;
      } finally {
        progress.stop();
      }
      if (!flags.json) printSummary(outcomes.at(-1) as RunOutcome, label);
    }
  } catch (err) {
    const resumeDir = batch?.dir ?? current;
    if (controller.signal.aborted) throw interruptedError(resumeDir);
    if (err instanceof RoleFailing) throw stoppedEarly(err, resumeDir);
    throw err;
  } finally {
    controller.dispose();
    batch?.close();
  }
  if (flags.json) process.stdout.write(JSON.stringify(outcomes.map(summaryJson), null, 2) + '\n');
  if (batch && !flags.json) process.stdout.write(`batch: ${batch.dir}\n`);
  throwIfIncomplete(outcomes, batch?.dir);
}

async function resumeAction(flags: RunFlags): Promise<void> {
  const dir = flags.resume!;
  if (await readBatchRecord(dir)) return resumeBatch(dir, flags);
  if (flags.queue) throw new UserError(`--queue resumes a batch directory; ${dir} is a single run (resume it without --queue)`);
  const { params } = await readRunRecord(dir);
  const controller = interruptible();
  const progress = new Progress(makePlan(params).budget, 'resume', flags.quiet || flags.json);
  let outcome: RunOutcome;
  try {
    outcome = await resumeRunDir(dir, { signal: controller.signal, onCall: progress.onCall, report: flags.report });
  } catch (err) {
    if (controller.signal.aborted) throw interruptedError(dir);
    if (err instanceof RoleFailing) throw stoppedEarly(err, dir);
    throw err;
  } finally {
    progress.stop();
    controller.dispose();
  }
  if (flags.json) process.stdout.write(JSON.stringify([summaryJson(outcome)], null, 2) + '\n');
  else printSummary(outcome, '');
  throwIfIncomplete([outcome]);
}

/** Finish a batch: its done runs kept, its interrupted run resumed, its prompts not started run. */
async function resumeBatch(dir: string, flags: RunFlags): Promise<void> {
  const batch = await BatchStore.open(dir);
  try {
    const b = batch.batch;
    if (b.prompts.every((p) => p.status === 'done')) throw new UserError(`batch ${dir} is already done; nothing to resume`);
    if (flags.genevalRungs && !flags.genevalOut) throw new UserError('--geneval-rungs needs --geneval-out <dir>');
    if (flags.genevalRungs) checkRungs(flags.genevalRungs, makePlan(b.params).budget);
    const config = (b.config ?? {}) as ConfigFile;
    if (flags.queue) return await (await queued()).queuedBatch(flags.queue, batch, { params: b.params, config, size: b.size, flags });
    const roles = await rolesFor(config, b.params.strategy);
    const jobs: Job[] = b.prompts.map((p) => ({ prompt: p.prompt, ...(p.record ? { record: p.record } : {}) }));
    await executeJobs(jobs, batch, { params: b.params, roles, config: b.config, outDir: batch.dir, size: b.size, prices: config.prices, flags });
  } finally {
    batch.close();
  }
}

function throwIfIncomplete(outcomes: Array<Pick<RunOutcome, 'dir' | 'run'> & { failures?: RunOutcome['failures'] }>, batchDir?: string): void {
  const incomplete = outcomes.filter((o) => o.run.status === 'incomplete');
  if (!incomplete.length) return;
  const resume = batchDir ? `reflectionflow run --resume ${batchDir}` : incomplete.map((o) => `reflectionflow run --resume ${o.dir}`).join(' ; ');
  throw new RunIncomplete(
    `${incomplete.length === 1 ? 'the run is' : `${incomplete.length} runs are`} incomplete: ${incomplete.map((o) => failureSummary(o.failures ?? [])).join(' | ')}; ` +
      `retry the failed calls with: ${resume}`,
  );
}

function stoppedEarly(err: RoleFailing, dir: string): RunIncomplete {
  return new RunIncomplete(`stopped early: ${err.message}; fix the ${err.role} backend and continue with: reflectionflow run --resume ${dir || '<runDir>'}`);
}

/**
 * GenEval's layout for prompt `i` of the batch: its record and the final image (nothing when there is none), and with
 * `--geneval-rungs` each rung's image in its own tree.
 */
export async function writeGeneval(flags: RunFlags, i: number, job: Job, run: RunRecord): Promise<void> {
  if (!flags.genevalOut || !job.record || !run.result?.bestPath) return;
  await writeGenevalPrompt(flags.genevalOut, i, job.record, [run.result.bestPath]);
  const images = path.dirname(run.result.bestPath);
  for (const { rung, id } of rungChoices(run.candidates, flags.genevalRungs ?? [])) {
    await writeGenevalPrompt(path.join(flags.genevalOut, rungFolder(rung)), i, job.record, [path.join(images, `${id}.png`)]);
  }
}

/** samples, width and depth that spend exactly `--budget` images, as `eval` spends a budget. */
function budgetSplit(config: ConfigFile, flags: RunFlags): Pick<SearchParams, 'samples' | 'width' | 'depth'> {
  const strategy = resolveParams(config, { strategy: flags.strategy, samples: 1, width: 1, depth: 0 }).strategy;
  const p = paramsForBudget(strategy, flags.budget!, flags.width ?? config.search?.width ?? 2, 0);
  return { samples: p.samples, width: p.width, depth: p.depth };
}

function collectJobs(promptArg: string | undefined, promptsFile: string | undefined): Job[] {
  if (promptsFile) {
    if (promptArg !== undefined) throw new UserError('give either a prompt or --prompts <file>, not both');
    return loadPromptFile(promptsFile).map((record) => ({ prompt: record.prompt, record }));
  }
  if (promptArg === undefined) throw new UserError('missing prompt: reflectionflow run "<prompt>" (or --prompts <file.jsonl>)');
  if (promptArg.trim() === '') throw new UserError('the prompt is empty');
  return [{ prompt: promptArg.trim() }];
}

function printPlan(jobs: Job[], params: SearchParams, rolePlans: RolePlan[], outDir: string, json?: boolean): void {
  const plan = makePlan(params);
  const tags = new Map<string, number>();
  for (const j of jobs) if (j.record) tags.set(j.record.tag, (tags.get(j.record.tag) ?? 0) + 1);
  const summary = {
    prompts: jobs.length,
    tags: Object.fromEntries(tags),
    strategy: params.strategy,
    params,
    budgetPerPrompt: plan.budget,
    budgetTotal: plan.budget * jobs.length,
    roles: Object.fromEntries(rolePlans.map((p) => [p.role, p.backend])),
    out: path.resolve(outDir),
  };
  if (json) {
    process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
    return;
  }
  const lines = [
    `plan: ${jobs.length} prompt${jobs.length === 1 ? '' : 's'}${tags.size ? ` (${[...tags].map(([t, n]) => `${t} ${n}`).join(', ')})` : ''}`,
    params.strategy === 'noise'
      ? `strategy: noise (best-of-N)  pool ${plan.pool} = samples ${params.samples} + width ${params.width} × depth ${params.depth}  seed ${params.seed}`
      : `strategy: ${params.strategy}  samples ${params.samples}  width ${plan.width}  depth ${plan.depth}  seed ${params.seed}  chain head ${params.chainHead}`,
    `budget: ${plan.budget} images per prompt${plan.budget < plan.requested ? ` (capped from ${plan.requested} by --max-images)` : ''}, ${summary.budgetTotal} in all` +
      (params.stopAt !== undefined ? `; stops once a score reaches ${params.stopAt} (pool in waves of ${params.wave ?? DEFAULT_WAVE}, chains round by round)` : ''),
    `roles: ${rolePlans.map((p) => `${p.role}=${p.backend}`).join('  ')}`,
    `out: ${summary.out}`,
  ];
  if (jobs.length <= 5) lines.splice(1, 0, ...jobs.map((j) => `  prompt: ${j.prompt}`));
  process.stdout.write(lines.join('\n') + '\n');
}

export function printSummary(o: RunOutcome, label: string): void {
  const r = o.run.result!;
  const busy = r.busyPerRole ?? {};
  const roles = Object.entries(busy)
    .map(([role, ms]) => `${role} ${(ms! / 1000).toFixed(2)}s (${r.wallMs ? Math.round((100 * ms!) / r.wallMs) : 0}%)`)
    .join(', ');
  const rate = r.wallMs > 0 ? ` ${((1000 * r.imagesGenerated) / r.wallMs).toFixed(1)} images/s` : '';
  const lines = [
    `${label ? label + ' ' : ''}${o.run.prompt}`,
    `  best: ${r.bestPath ?? '(no image)'}${r.bestScore !== null ? `  score ${r.bestScore.toFixed(4)}` : ''}`,
    ...(o.run.status === 'incomplete' ? [`  incomplete: ${failureSummary(o.failures)}`] : []),
    ...(r.stoppedAt ? [`  stopped early: ${r.stoppedAt} reached --stop-at ${o.run.params.stopAt}`] : []),
    `  budget: ${r.imagesGenerated}/${r.budget} images  wall ${(r.wallMs / 1000).toFixed(2)}s${rate}  busy per role (share of wall): ${roles || 'none (all replayed)'}`,
    `  calls: ${usageLine(r.usage ?? {})}${r.cost ? `; estimated price ${r.cost.total.toPrecision(3)}${r.cost.builtIn ? ` (${builtInNote(r.cost.builtIn)})` : ''}` : ''}`,
    `  run: ${o.dir}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

const compact = (n: number): string => (n >= 10_000 ? `${(n / 1000).toFixed(0)}k` : n >= 1000 ? `${(n / 1000).toFixed(1)}k` : String(n));

/** `generator 16 (16 images), verifier 16 (3.2k in / 16 out tokens, 1 retry)`, every attempt's calls. */
function usageLine(usage: NonNullable<NonNullable<RunOutcome['run']['result']>['usage']>): string {
  const parts = Object.entries(usage).map(([role, u]) => {
    const extra: string[] = [];
    if (u!.images) extra.push(`${u!.images} image${u!.images === 1 ? '' : 's'}`);
    if (u!.inputTokens || u!.outputTokens) extra.push(`${compact(u!.inputTokens)} in / ${compact(u!.outputTokens)} out tokens`);
    if (u!.failed) extra.push(`${u!.failed} failed`);
    if (u!.retries) extra.push(`${u!.retries} retr${u!.retries === 1 ? 'y' : 'ies'}`);
    return `${role} ${u!.calls}${extra.length ? ` (${extra.join(', ')})` : ''}`;
  });
  return parts.join(', ') || 'none';
}

export function summaryJson(o: Pick<RunOutcome, 'dir' | 'run'>) {
  const r = o.run.result!;
  return { dir: o.dir, prompt: o.run.prompt, ...r };
}

/** Ctrl-C stops the search (says so: `what`) and leaves a resumable run; a second Ctrl-C exits at once. */
export function interruptible(what = 'stopping…'): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  let count = 0;
  const onSignal = () => {
    count++;
    if (count > 1) process.exit(130);
    process.stderr.write(`${what} (Ctrl-C again to quit at once)\n`);
    controller.abort(new Error('interrupted'));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

function interruptedError(dir: string): Interrupted {
  return new Interrupted(`interrupted: continue with: reflectionflow run --resume ${dir || '<runDir>'}`);
}
