import type { RoleSet } from '../core/roles.js';
import { ROLES, type Role } from '../backends/registry.js';
import { ApiError, quote } from './errors.js';

/** `reflectionflow-generator`, `reflectionflow-verifier`, … */
export function modelId(role: Role): string {
  return `reflectionflow-${role}`;
}

export interface ServedModel {
  id: string;
  role: Role;
  /** the backend name the role reports (e.g. `embedded`, `procedural`, `oracle`) */
  backend: string;
}

/** The models a role set serves, one per role it has, in role order. */
export function servedModels(roles: Partial<RoleSet>): ServedModel[] {
  return ROLES.filter((k) => roles[k]).map((k) => ({ id: modelId(k), role: k, backend: roles[k]!.name }));
}

/**
 * The role a request's model names. An id this server does not serve is 404 model_not_found; a served model asked
 * for on an endpoint it does not answer is 400 (e.g. the verifier on images/generations).
 */
export function roleForModel(roles: Partial<RoleSet>, model: string, endpoint: string, accepted: readonly Role[]): Role {
  const served = servedModels(roles).find((m) => m.id === model);
  if (!served) {
    throw new ApiError(404, `The model ${quote(model)} does not exist (served: ${servedModels(roles).map((m) => m.id).join(', ') || 'none'})`, 'model_not_found', 'model');
  }
  if (!accepted.includes(served.role)) {
    const ok = accepted.filter((k) => roles[k]).map(modelId);
    throw new ApiError(400, `The model ${quote(model)} is not served on ${endpoint} (use ${ok.join(' or ') || 'none: this server has no such role'})`, 'model_not_supported', 'model');
  }
  return served.role;
}

export { RoleLimits } from '../core/limits.js';
