import { buildRoles, planRoles, type RolePlan } from '../config/resolve.js';
import { absoluteBackendName } from '../backends/registry.js';
import type { ConfigFile } from '../config/schema.js';
import type { RoleSet } from '../core/roles.js';
import { UserError } from '../core/errors.js';
import { STRATEGIES, type Strategy } from '../core/types.js';
import type { EvalArm } from './harness.js';

/** `noise`, `reflection`, … or `<strategy>@oracle`: that strategy with the ShapeWorld evaluator as its verifier. */
export interface ArmSpec {
  label: string;
  strategy: Strategy;
  oracle: boolean;
}

export function parseStrategies(list: string, allOracle: boolean): ArmSpec[] {
  const items = list.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UserError('no strategy given');
  const arms = items.map((item) => {
    const [name, suffix, ...rest] = item.split('@');
    if (!(STRATEGIES as readonly string[]).includes(name!) || rest.length || (suffix !== undefined && suffix !== 'oracle')) {
      throw new UserError(`unknown strategy '${item}' (choose ${STRATEGIES.join(', ')}, each optionally with @oracle)`);
    }
    const oracle = allOracle || suffix === 'oracle';
    return { label: allOracle || suffix === undefined ? name! : item, strategy: name as Strategy, oracle };
  });
  const seen = new Set<string>();
  for (const a of arms) {
    if (seen.has(a.label)) throw new UserError(`strategy '${a.label}' given twice`);
    seen.add(a.label);
  }
  return arms;
}

/**
 * The roles an eval's arms need, built once, and the arms with their roles: an `@oracle` arm ranks by the
 * ShapeWorld evaluator instead of the configured verifier. `stopAt` adds each arm again, stopping at each score.
 */
export async function buildArms(config: ConfigFile, specs: ArmSpec[], stopAt: number[] = []): Promise<{ roles: RoleSet; plans: RolePlan[]; arms: EvalArm[] }> {
  const plans = armPlans(config, specs);
  const roles = await buildRoles(plans);
  const oracle = specs.some((a) => a.oracle) ? (await buildRoles(planRoles({ backend: 'procedural' }, 'noise'))).verifier : null;
  const fixed: EvalArm[] = specs.map((a) =>
    a.oracle ? { label: a.label, strategy: a.strategy, roles: { ...roles, verifier: oracle! }, verifierScope: 'oracle' } : { label: a.label, strategy: a.strategy },
  );
  const arms = [...fixed, ...stopAt.flatMap((t) => fixed.map((a) => ({ ...a, label: `${a.label} stop@${t}`, stopAt: t })))];
  return { roles, plans, arms };
}

/** The roles the arms need, one plan each (an `@oracle` arm's verifier is the evaluator, planned apart). */
export function armPlans(config: ConfigFile, specs: ArmSpec[]): RolePlan[] {
  const needed = new Map<string, RolePlan>();
  for (const a of specs) for (const p of planRoles(config, a.strategy)) if (!(a.oracle && p.role === 'verifier')) needed.set(p.role, p);
  return [...needed.values()];
}

/**
 * The judge of `eval --judge <backend>`: that backend (or the config's `judge.backend`) with the config's `judge`
 * options alone. Refused when it is a verifier the search uses (same backend, same options), unless `self` says the
 * user means it.
 */
export function planJudge(config: ConfigFile, backend: string, specs: ArmSpec[], self: boolean): RolePlan {
  const { backend: _b, enabled: _e, ...own } = config.judge ?? {};
  const plan: RolePlan = { role: 'verifier', backend: absoluteBackendName(backend), options: own, required: true };
  const searched: RolePlan[] = [];
  if (specs.some((a) => !a.oracle)) searched.push(...planRoles(config, 'noise').filter((p) => p.role === 'verifier'));
  if (specs.some((a) => a.oracle)) searched.push(...planRoles({ backend: 'procedural' }, 'noise').filter((p) => p.role === 'verifier'));
  const same = searched.find((p) => p.backend === plan.backend && sameOptions(p.options, plan.options));
  if (same && !self) {
    throw new UserError(
      `the judge would be the search's own verifier (${same.backend} with the same options): name another backend or other options (config "judge"), or pass --self-judge to judge with it anyway`,
    );
  }
  return plan;
}

function sameOptions(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  // concurrency changes how calls are scheduled, not what the verifier answers
  const canon = (o: Record<string, unknown>) => JSON.stringify(Object.entries(o).filter(([k]) => k !== 'concurrency').sort(([x], [y]) => (x < y ? -1 : 1)));
  return canon(a) === canon(b);
}
