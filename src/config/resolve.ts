import { UserError } from '../core/errors.js';
import type { RoleSet } from '../core/roles.js';
import type { SearchParams } from '../core/types.js';
import { embeddedModelsPresent } from '../backends/embedded/index.js';
import { absoluteBackendName, createBackend, getBackend, providerOf } from '../backends/registry.js';
import { OPTIONAL_ROLES, requiredRoles, ROLES, type Role } from '../core/strategies.js';
import { searchParamsSchema } from '../core/params.js';
import type { ConfigFile, RoleSpec } from './schema.js';
import { BUDGET_LIMIT } from './limits.js';

export { BUDGET_LIMIT };


/** The backend of roles no config names: the embedded ShapeWorld models, when they are installed. */
export function defaultBackend(): string | undefined {
  return embeddedModelsPresent() ? 'embedded' : undefined;
}

function backendOf(config: ConfigFile, role: Role): string | undefined {
  return config.roles?.[role]?.backend ?? config.backend ?? defaultBackend();
}

/**
 * The strategy when none is given: the full method (`reflection`) when the configured backends can reflect and
 * correct, else prompt-level scaling (`noise+prompt`) when they can refine, else best-of-N (`noise`).
 */
export function defaultStrategy(config: ConfigFile): SearchParams['strategy'] {
  const can = (role: Role): boolean => {
    const name = backendOf(config, role);
    const provider = name ? getBackend(name) : undefined;
    return !provider || provider.roles.includes(role);
  };
  if (can('reflector') && can('corrector')) return 'reflection';
  if (can('refiner') && config.roles?.refiner?.enabled !== false) return 'noise+prompt';
  return 'noise';
}

/** Search parameters: defaults, then the config file, then flags. */

export function resolveParams(config: ConfigFile, flags: Partial<SearchParams>, budgetLimit: number = BUDGET_LIMIT): SearchParams {
  const merged = { ...config.search, ...stripUndefined(flags) };
  merged.strategy ??= defaultStrategy(config);
  const parsed = searchParamsSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UserError(`search.${issue.path.join('.')}: ${issue.message}`);
  }
  const p = parsed.data;
  const budget = p.samples + p.width * p.depth;
  const asked = p.maxImages !== undefined ? Math.min(budget, p.maxImages) : budget;
  if (asked > budgetLimit) {
    throw new UserError(
      `a budget of ${asked} images per prompt (samples ${p.samples} + width ${p.width} × depth ${p.depth}) is above the limit of ${budgetLimit}; lift it with --budget-limit ${asked}`,
    );
  }
  return p;
}

export interface RolePlan {
  role: Role;
  backend: string;
  options: Record<string, unknown>;
  /** the strategy cannot run without it; optional roles are skipped when their backend lacks them */
  required: boolean;
}

/**
 * Which backend (and options) serves each role: the role's own backend, else the config's, else the default (the
 * embedded models when installed); options = the config's `options` and the role's own. For a strategy, the roles it
 * uses (throws when a needed one has no backend or is disabled); for `'every'` (serve), every role the backends have,
 * none required. The one place that resolves and checks backend names, for run, eval and serve.
 */
/** Make the config's `module:` backend paths absolute, so that run.json names them for a resume from another folder. */
export function absoluteBackends(config: ConfigFile): void {
  if (config.backend) config.backend = absoluteBackendName(config.backend);
  for (const spec of Object.values(config.roles ?? {})) if (spec?.backend) spec.backend = absoluteBackendName(spec.backend);
}

export function planRoles(config: ConfigFile, strategy: SearchParams['strategy'] | 'every'): RolePlan[] {
  const plans: RolePlan[] = [];
  const needed = strategy === 'every' ? [] : requiredRoles(strategy);
  const wanted = strategy === 'every' ? ROLES : [...needed, ...OPTIONAL_ROLES[strategy]];
  for (const role of wanted) {
    const spec: RoleSpec = config.roles?.[role] ?? {};
    if (spec.enabled === false) {
      if (needed.includes(role)) throw new UserError(`strategy '${strategy}' needs a ${role}; it cannot be disabled`);
      continue;
    }
    const name = backendOf(config, role);
    if (!name) {
      throw new UserError(
        `no backend for the ${role}: the embedded models are not installed; pass --backend <name> or set "backend" in a config file (see 'reflectionflow backends')`,
      );
    }
    const backend = absoluteBackendName(name);
    const provider = providerOf(backend);
    if (strategy === 'every' && provider && !provider.roles.includes(role)) continue;
    const { backend: _b, enabled: _e, ...own } = spec;
    plans.push({ role, backend, options: { ...config.options, ...own }, required: needed.includes(role) });
  }
  return plans;
}

/**
 * The checks the planned backends can make of a run's input before their roles are made (the embedded models'
 * vocabulary and size, read from their cards), so that a refused prompt does not wait for models to load.
 */
export function inputChecks(plans: RolePlan[]): { prompt(prompt: string): void; size(size: number): void } {
  const groups = new Map<string, { plan: RolePlan; roles: Role[] }>();
  for (const plan of plans) {
    const key = `${plan.backend}\u0000${JSON.stringify(plan.options)}`;
    const group = groups.get(key) ?? { plan, roles: [] };
    group.roles.push(plan.role);
    groups.set(key, group);
  }
  const checks = [...groups.values()].map(({ plan, roles }) => providerOf(plan.backend)?.inputCheck?.(plan.options, roles) ?? {});
  return {
    prompt: (prompt) => checks.forEach((c) => c.prompt?.(prompt)),
    size: (size) => checks.forEach((c) => c.size?.(size)),
  };
}

/**
 * Make the role objects. Roles with the same backend and options come from one backend instance, so that they
 * share its connections and concurrency limit.
 */
export async function buildRoles(plans: RolePlan[]): Promise<RoleSet> {
  const instances = new Map<string, Promise<Partial<RoleSet>>>();
  const roles: Partial<RoleSet> = {};
  for (const plan of plans) {
    const key = `${plan.backend}\u0000${JSON.stringify(plan.options)}`;
    if (!instances.has(key)) instances.set(key, Promise.resolve(createBackend(plan.backend, plan.options)));
    const made = await instances.get(key)!;
    const role = made[plan.role];
    if (!role) {
      if (!plan.required) continue;
      throw new UserError(`backend '${plan.backend}' has no ${plan.role}`);
    }
    (roles as Record<Role, unknown>)[plan.role] = role;
  }
  return roles as RoleSet;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
