/** The five roles, and which of them each strategy needs and may use: the method's table, apart from any backend. */
import type { RoleSet } from './roles.js';
import type { Strategy } from './types.js';

export type Role = keyof RoleSet;
export const ROLES: readonly Role[] = ['generator', 'verifier', 'reflector', 'refiner', 'corrector'];

/** Which roles a strategy needs, for a clear error before anything runs. */
export function requiredRoles(strategy: Strategy): Role[] {
  if (strategy === 'noise') return ['generator', 'verifier'];
  if (strategy === 'noise+prompt') return ['generator', 'verifier', 'refiner'];
  return ['generator', 'verifier', 'reflector', 'corrector'];
}

/** Roles a strategy can use beyond the ones it needs. */
export const OPTIONAL_ROLES: Readonly<Record<Strategy, readonly Role[]>> = {
  noise: [],
  'noise+prompt': [],
  reflection: ['refiner'],
};
