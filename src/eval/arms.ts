import { buildRoles, planRoles, type RolePlan } from '../config/resolve.js';
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
  const needed = new Map<string, RolePlan>();
  for (const a of specs) for (const p of planRoles(config, a.strategy)) if (!(a.oracle && p.role === 'verifier')) needed.set(p.role, p);
  const roles = await buildRoles([...needed.values()]);
  const oracle = specs.some((a) => a.oracle) ? (await buildRoles(planRoles({ backend: 'procedural' }, 'noise'))).verifier : null;
  const fixed: EvalArm[] = specs.map((a) =>
    a.oracle ? { label: a.label, strategy: a.strategy, roles: { ...roles, verifier: oracle! }, verifierScope: 'oracle' } : { label: a.label, strategy: a.strategy },
  );
  const arms = [...fixed, ...stopAt.flatMap((t) => fixed.map((a) => ({ ...a, label: `${a.label} stop@${t}`, stopAt: t })))];
  return { roles, plans: [...needed.values()], arms };
}
