/**
 * Runs written before the role vocabulary was unified name roles by their verb (`generate`, `verify`, ...) in
 * events.jsonl and in run.json's per-role maps. They are read in today's spelling, so that such runs still resume,
 * report and show in the web view. Call keys (`generate:r0-…`) keep the verb: they identify calls, and a resume
 * replays a call only under the key it was recorded with.
 */
import { ROLES, type Role } from '../core/strategies.js';
import type { CallEvent, RunRecord } from './types.js';

const OLD_SPELLING: Readonly<Record<string, Role>> = {
  generate: 'generator',
  verify: 'verifier',
  reflect: 'reflector',
  refine: 'refiner',
  correct: 'corrector',
};

function roleOf(name: string): string {
  return (ROLES as readonly string[]).includes(name) ? name : (OLD_SPELLING[name] ?? name);
}

function perRole<T>(map: Partial<Record<string, T>> | undefined): Partial<Record<Role, T>> | undefined {
  if (!map) return map;
  return Object.fromEntries(Object.entries(map).map(([role, v]) => [roleOf(role), v]));
}

/** An event as read from disk, in today's role spelling. */
export function eventFromDisk(event: CallEvent): CallEvent {
  const role = roleOf(event.role);
  return role === event.role ? event : { ...event, role: role as Role };
}

/** A run record as read from disk, its per-role maps in today's role spelling. */
export function runFromDisk(run: RunRecord): RunRecord {
  const out: RunRecord = { ...run, backends: perRole(run.backends) ?? {} };
  const r = run.result;
  if (r) {
    out.result = { ...r, timePerRole: perRole(r.timePerRole) ?? {} };
    if (r.busyPerRole) out.result.busyPerRole = perRole(r.busyPerRole);
    if (r.usage) out.result.usage = perRole(r.usage);
    if (r.failedCalls) out.result.failedCalls = perRole(r.failedCalls);
    if (r.cost) out.result.cost = { ...r.cost, perRole: perRole(r.cost.perRole)! };
  }
  return out;
}
