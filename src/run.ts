import { UserError } from './core/errors.js';
import type { RoleSet } from './core/roles.js';
import type { PromptMeta, Role, SearchParams } from './core/types.js';
import { checkPrompt, checkSize, search, type SearchOutcome } from './search/loop.js';
import { RoleFailing, type CallListener } from './search/calls.js';
import { EVENTS_FILE, readEvents, RunStore } from './store/run-store.js';
import { addCall, emptyRoleUsage, priceOf, type Price, type RoleUsage } from './core/usage.js';
import path from 'node:path';
import type { RunRecord } from './store/types.js';
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
  /** prices per backend name, for the cost estimate in run.json */
  prices?: Record<string, Price>;
}

export interface RunOutcome extends SearchOutcome {
  dir: string;
  run: RunRecord;
}

export function backendNames(roles: RoleSet): Partial<Record<Role, string>> {
  const names: Partial<Record<Role, string>> = {
    generate: roles.generator.name,
    verify: roles.verifier.name,
  };
  if (roles.reflector) names.reflect = roles.reflector.name;
  if (roles.refiner) names.refine = roles.refiner.name;
  if (roles.corrector) names.correct = roles.corrector.name;
  return names;
}

/** Run one search into a new run directory. */
export async function runSearch(opts: RunOptions): Promise<RunOutcome> {
  checkPrompt(opts.roles, opts.prompt); // before the run directory exists
  checkSize(opts.roles, opts.size);
  const store = await RunStore.create(opts.outDir ?? 'runs', {
    prompt: opts.prompt,
    ...(opts.meta ? { meta: opts.meta } : {}),
    params: opts.params,
    config: opts.config ?? null,
    backends: backendNames(opts.roles),
  });
  opts.onCreated?.(store.dir);
  return execute(store, opts);
}

/** Continue a run directory: finished calls are replayed from events.jsonl, the rest are made. */
export async function resumeSearch(
  dir: string,
  opts: Omit<RunOptions, 'prompt' | 'meta' | 'params' | 'outDir' | 'config'>,
): Promise<RunOutcome> {
  const store = await RunStore.open(dir);
  const run = store.run;
  if (run.status === 'done') {
    // finished by another process between the caller's look at run.json and the lock
    await store.close();
    throw new UserError(`run ${dir} is already done; nothing to resume`);
  }
  await store.update({ status: 'running', error: undefined });
  opts.onCreated?.(store.dir);
  return execute(store, {
    ...opts,
    prompt: run.prompt,
    ...(run.meta ? { meta: run.meta } : {}),
    params: run.params,
  });
}

async function execute(store: RunStore, opts: RunOptions): Promise<RunOutcome> {
  const started = performance.now();
  const before = store.run.elapsedMs ?? 0;
  const elapsed = () => Math.round(before + performance.now() - started);
  let outcome: SearchOutcome;
  try {
    outcome = await search({
      prompt: opts.prompt,
      ...(opts.meta ? { meta: opts.meta } : {}),
      params: opts.params,
      roles: opts.roles,
      io: store,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onCall ? { onCall: opts.onCall } : {}),
      ...(opts.size ? { size: opts.size } : {}),
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
  prices?: Record<string, Price> | undefined;
  onCreated?: ((dir: string) => void) | undefined;
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

/** The estimated price per role from a price table keyed by backend name; null when no role's backend has a price. */
export function costOf(
  usage: Partial<Record<Role, RoleUsage>>,
  backends: Partial<Record<Role, string>>,
  prices: Record<string, Price> | undefined,
): { perRole: Partial<Record<Role, number>>; total: number } | null {
  if (!prices) return null;
  const perRole: Partial<Record<Role, number>> = {};
  for (const [role, u] of Object.entries(usage) as Array<[Role, RoleUsage]>) {
    const name = backends[role];
    const p = name ? priceOf(u, prices[name]) : null;
    if (p !== null) perRole[role] = p;
  }
  const roles = Object.values(perRole);
  return roles.length ? { perRole, total: roles.reduce((a, b) => a + b, 0) } : null;
}
