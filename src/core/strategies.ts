/** The five roles, and which of them each strategy needs and may use: the method's table, apart from any backend. */
import type { RoleSet } from './roles.js';
import type { Strategy } from './types.js';

export type RoleKey = keyof RoleSet;
export const ROLE_KEYS: readonly RoleKey[] = ['generator', 'verifier', 'reflector', 'refiner', 'corrector'];

/** Which roles a strategy needs, for a clear error before anything runs. */
export function requiredRoles(strategy: Strategy): RoleKey[] {
  if (strategy === 'noise') return ['generator', 'verifier'];
  if (strategy === 'noise+prompt') return ['generator', 'verifier', 'refiner'];
  return ['generator', 'verifier', 'reflector', 'corrector'];
}

/** Roles a strategy can use beyond the ones it needs. */
export const OPTIONAL_ROLES: Readonly<Record<Strategy, readonly RoleKey[]>> = {
  noise: [],
  'noise+prompt': [],
  reflection: ['refiner'],
};
