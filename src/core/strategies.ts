/** The five roles, and which of them each strategy needs and may use: the method's table, apart from any backend. */
import type { RoleSet } from './roles.js';

/** The search strategies (kept apart from params.ts's schema, so that the CLI's flags need no zod). */
export const STRATEGIES = ['noise', 'noise+prompt', 'reflection'] as const;
export type Strategy = (typeof STRATEGIES)[number];

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
