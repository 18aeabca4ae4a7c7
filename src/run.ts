import type { RoleSet } from './core/roles.js';
import { ROLES, type Role } from './core/strategies.js';
import type { PromptMeta, SearchParams } from './core/types.js';
import { checkSearch, runChecked, type CheckedSearch, type SearchOutcome } from './search/loop.js';
import type { CallListener } from './search/calls.js';
import { RoleFailing, UserError } from './core/errors.js';
import { buildRoles, planRoles } from './config/resolve.js';
import type { ConfigFile } from './config/schema.js';
import { EVENTS_FILE, readEvents, readRunRecord, RunStore } from './store/run-store.js';
import { addCall, emptyRoleUsage, priceOf, type RoleUsage } from './core/usage.js';
import { resolvePrice, type PriceSource, type PriceTable } from './core/prices.js';
import path from 'node:path';
import type { RunCost, RunRecord } from './store/types.js';
import { metaOf, type PromptRecord } from './config/prompts.js';

export interface RunOptions {
  prompt: string;
  meta?: PromptMeta;
  params: SearchParams;
  roles: RoleSet;
  /** parent folder of run directories (`runs/` by default) */
  outDir?: string;
  /** the configuration to keep in run.json, secrets already removed; needed to resume from the CLI */
  config?: unknown;
  size?: number;
  signal?: AbortSignal;
  onCall?: CallListener;
  /** write report.html at the end (default true) */
  report?: boolean;
  /** told the run directory as soon as it exists (a resumed run: as soon as it is locked and marked running) */
  onCreated?: (dir: string) => void;
  /** prices per backend name over the built-in ones (`null`: none), for the cost estimate in run.json */
  prices?: PriceTable;
  /** this run's search, when the caller checked it already (a batch checks every prompt before its first run) */
  checked?: CheckedSearch;
}

export interface RunOutcome extends SearchOutcome {
  dir: string;
  run: RunRecord;
}

export function backendNames(roles: RoleSet): Partial<Record<Role, string>> {
  const names: Partial<Record<Role, string>> = {};
  for (const role of ROLES) if (roles[role]) names[role] = roles[role].name;
  return names;
}

// what the CLI, the web view and the queue need of a search besides running it: its plan, its checks, its record
export { checkPrompt, checkSearch, DEFAULT_WAVE, type CheckedSearch } from './search/loop.js';
export { makePlan, type SearchPlan } from './search/plan.js';
export { readRunRecord } from './store/run-store.js';

/** The roles a config names for a strategy, built (roles with the same backend and options share one instance). */
export function rolesFor(config: ConfigFile, strategy: SearchParams['strategy']): Promise<RoleSet> {
  return buildRoles(planRoles(config, strategy));
}

/** A run directory's record when the run is done (a batch keeps it as it is), else null. */
export async function doneRun(dir: string): Promise<RunRecord | null> {
  const run = await readRunRecord(dir);
  return run.status === 'done' ? run : null;
}

/**
 * Resume a run directory with the roles, size and prices of the config it keeps (secrets come from the
 * environment again). A run that is done is refused.
 */
export async function resumeRunDir(dir: string, opts: Omit<RunOptions, 'prompt' | 'meta' | 'params' | 'outDir' | 'config' | 'roles' | 'size' | 'prices' | 'checked'>): Promise<RunOutcome> {
  const run = await readRunRecord(dir);
  if (run.status === 'done') throw new UserError(`run ${dir} is already done; nothing to resume`);
  const config = (run.config ?? {}) as ConfigFile;
  const roles = await rolesFor(config, run.params.strategy);
  return resumeSearch(dir, { ...opts, roles, ...(config.size ? { size: config.size } : {}), ...(config.prices ? { prices: config.prices } : {}) });
}

/** Run one search into a new run directory. */
export async function runSearch(opts: RunOptions): Promise<RunOutcome> {
  const checked = opts.checked ?? checkSearch(opts); // before the run directory exists
  const store = await RunStore.create(opts.outDir ?? 'runs', {
    prompt: opts.prompt,
    ...(opts.meta ? { meta: opts.meta } : {}),
    params: opts.params,
    config: opts.config ?? null,
    backends: backendNames(opts.roles),
  });
  opts.onCreated?.(store.dir);
  return execute(store, checked, opts);
}

/** Continue a run directory: finished calls are replayed from events.jsonl, the rest are made. */
export async function resumeSearch(
  dir: string,
  opts: Omit<RunOptions, 'prompt' | 'meta' | 'params' | 'outDir' | 'config'>,
): Promise<RunOutcome> {
  const store = await RunStore.open(dir);
  const run = store.run;
  const setup = { ...opts, prompt: run.prompt, ...(run.meta ? { meta: run.meta } : {}), params: run.params };
  let checked: CheckedSearch;
  try {
    // under the lock: another process may have finished it since the caller looked
    if (run.status === 'done') throw new UserError(`run ${dir} is already done; nothing to resume`);
    checked = opts.checked ?? checkSearch(setup);
  } catch (err) {
    await store.close(); // refused before it starts: the run stays as it was
    throw err;
  }
  await store.update({ status: 'running', error: undefined });
  opts.onCreated?.(store.dir);
  return execute(store, checked, setup);
}

async function execute(store: RunStore, checked: CheckedSearch, opts: RunOptions): Promise<RunOutcome> {
  const started = performance.now();
  const before = store.run.elapsedMs ?? 0;
  const elapsed = () => Math.round(before + performance.now() - started);
  let outcome: SearchOutcome;
  try {
    outcome = await runChecked(checked, {
      io: store,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onCall ? { onCall: opts.onCall } : {}),
    });
  } catch (err) {
    const interrupted = opts.signal?.aborted ?? false;
    await store.update({
      status: interrupted ? 'interrupted' : err instanceof RoleFailing ? 'incomplete' : 'failed',
      error: String((err as Error)?.message ?? err),
      elapsedMs: elapsed(),
    });
    await store.close();
    throw err;
  }
  const best = outcome.candidates.find((c) => c.id === outcome.bestId);
  // the whole run's calls, every attempt's (events.jsonl holds each call made, replays write nothing)
  const usage: Partial<Record<Role, RoleUsage>> = {};
  for (const e of await readEvents(path.join(store.dir, EVENTS_FILE))) addCall((usage[e.role] ??= emptyRoleUsage()), e);
  const cost = costOf(usage, store.run.backends, opts.prices);
  const failedCalls: Partial<Record<Role, number>> = {};
  for (const e of outcome.failures) failedCalls[e.role] = (failedCalls[e.role] ?? 0) + 1;
  await store.update({
    status: outcome.failures.length ? 'incomplete' : 'done',
    ...(outcome.failures.length ? { error: failureSummary(outcome.failures) } : { error: undefined }),
    elapsedMs: elapsed(),
    candidates: outcome.candidates,
    result: {
      bestId: outcome.bestId,
      bestScore: best?.evaluation?.score ?? null,
      bestPath: best ? store.imagePath(best.id) : null,
      chains: outcome.chains,
      imagesGenerated: outcome.imagesGenerated,
      budget: outcome.budget,
      timePerRole: outcome.timePerRole,
      busyPerRole: outcome.busyPerRole,
      wallMs: elapsed(),
      ...(outcome.failures.length ? { failedCalls } : {}),
      ...(outcome.stoppedAt ? { stoppedAt: outcome.stoppedAt } : {}),
      usage,
      ...(cost ? { cost } : {}),
    },
  });
  await store.close();
  if (opts.report !== false) {
    const { writeReport } = await import('./report/html.js');
    await writeReport(store.dir);
  }
  return { ...outcome, dir: store.dir, run: store.run };
}

/** What a batch needs to run (or resume) one of its prompts; `undefined` fields are left out. */
export interface BatchPromptRun {
  /** the run directory an earlier attempt made for this prompt, if any: it is resumed */
  existing: string | null | undefined;
  prompt: string;
  record?: PromptRecord | undefined;
  params: SearchParams;
  roles: RoleSet;
  outDir: string;
  config: unknown;
  size?: number | undefined;
  signal?: AbortSignal | undefined;
  onCall?: CallListener | undefined;
  report: boolean;
  prices?: PriceTable | undefined;
  onCreated?: ((dir: string) => void) | undefined;
  checked?: CheckedSearch | undefined;
}

/** Prompt of a batch: the run an earlier attempt started is resumed (its finished calls replayed), or a new run made. */
export function runBatchPrompt(o: BatchPromptRun): Promise<RunOutcome> {
  const common = {
    roles: o.roles,
    report: o.report,
    ...(o.size ? { size: o.size } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.onCall ? { onCall: o.onCall } : {}),
    ...(o.prices ? { prices: o.prices } : {}),
    ...(o.checked ? { checked: o.checked } : {}),
  };
  if (o.existing) return resumeSearch(o.existing, common);
  return runSearch({
    ...common,
    prompt: o.prompt,
    ...(o.record ? { meta: metaOf(o.record) } : {}),
    params: o.params,
    outDir: o.outDir,
    config: o.config,
    ...(o.onCreated ? { onCreated: o.onCreated } : {}),
  });
}

/** One line for run.json and the CLI: how many calls failed, per role, and the first error of each role. */
export function failureSummary(failures: ReadonlyArray<{ role: Role; error?: string }>): string {
  const byRole = new Map<Role, { n: number; first: string }>();
  for (const f of failures) {
    const r = byRole.get(f.role);
    if (r) r.n++;
    else byRole.set(f.role, { n: 1, first: (f.error ?? '').split('\n')[0]! });
  }
  return [...byRole].map(([role, { n, first }]) => `${n} ${role} call${n === 1 ? '' : 's'} failed (${first})`).join('; ');
}

/**
 * The estimated price per role from a price table keyed by backend name, over the built-in prices (a `null` entry
 * gives its backend none); null when no role's backend has a price. `builtIn` names the backends priced from the
 * built-in table, with where and when their price was read.
 */
export function costOf(
  usage: Partial<Record<Role, RoleUsage>>,
  backends: Partial<Record<Role, string>>,
  prices: PriceTable | undefined,
): RunCost | null {
  const perRole: Partial<Record<Role, number>> = {};
  const builtIn: Record<string, PriceSource> = {};
  for (const [role, u] of Object.entries(usage) as Array<[Role, RoleUsage]>) {
    const name = backends[role];
    const resolved = name ? resolvePrice(name, prices) : null;
    if (!resolved) continue;
    perRole[role] = priceOf(u, resolved.price)!;
    if (resolved.builtIn) builtIn[name!] = resolved.builtIn;
  }
  const roles = Object.values(perRole);
  if (!roles.length) return null;
  return { perRole, total: roles.reduce((a, b) => a + b, 0), ...(Object.keys(builtIn).length ? { builtIn } : {}) };
}
