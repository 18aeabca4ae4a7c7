import { absoluteBackendName, getBackend, ROLE_KEYS } from '../backends/registry.js';
import { buildRoles, defaultBackend, type RolePlan } from '../config/resolve.js';
import type { ConfigFile } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import type { RoleSet } from '../core/roles.js';

/**
 * The roles `serve` offers, resolved as `run` resolves them: per-role backend, else the config's backend, else the
 * default (the embedded models when installed); backend options = the config's `options` and the role's own. Every
 * role the backends have is served; a role turned off with `enabled: false` is not.
 */
export async function resolveServedRoles(config: ConfigFile): Promise<Partial<RoleSet>> {
  const plans: RolePlan[] = [];
  for (const role of ROLE_KEYS) {
    const spec = config.roles?.[role] ?? {};
    if (spec.enabled === false) continue;
    const name = spec.backend ?? config.backend ?? defaultBackend();
    if (!name) {
      throw new UserError(
        `no backend for the ${role}: the embedded models are not installed; pass --backend <name> or set "backend" in a config file (see 'reflectionflow backends')`,
      );
    }
    const backend = absoluteBackendName(name);
    const provider = getBackend(backend);
    if (provider && !provider.roles.includes(role)) continue;
    if (!provider && !backend.startsWith('module:')) {
      throw new UserError(`unknown backend '${backend}' (see 'reflectionflow backends')`);
    }
    const { backend: _b, enabled: _e, ...own } = spec;
    plans.push({ role, backend, options: { ...config.options, ...own }, required: false });
  }
  const roles: Partial<RoleSet> = await buildRoles(plans);
  if (!ROLE_KEYS.some((k) => roles[k])) throw new UserError('nothing to serve: the configured backends have none of the five roles');
  return roles;
}
