import { ROLES } from '../backends/registry.js';
import { buildRoles, planRoles } from '../config/resolve.js';
import type { ConfigFile } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import type { RoleSet } from '../core/roles.js';

/**
 * The roles `serve` offers, resolved as `run` resolves them (`planRoles`): every role the backends have is served;
 * a role turned off with `enabled: false` is not.
 */
export async function resolveServedRoles(config: ConfigFile): Promise<Partial<RoleSet>> {
  const roles: Partial<RoleSet> = await buildRoles(planRoles(config, 'every'));
  if (!ROLES.some((k) => roles[k])) throw new UserError('nothing to serve: the configured backends have none of the five roles');
  return roles;
}
