import pLimit, { type LimitFunction } from 'p-limit';
import type { RoleInfo } from './roles.js';

/**
 * The one concurrency rule, for the search engine and the server alike: at most `concurrency` calls of a role in
 * flight, and roles that name one `limitGroup` (one backend's connection pool) share the first limit made for it.
 */
export class RoleLimits {
  private readonly limits = new WeakMap<object, LimitFunction>();

  run<T>(role: RoleInfo, fn: () => Promise<T>): Promise<T> {
    const key = role.limitGroup ?? role;
    let limit = this.limits.get(key);
    if (!limit) {
      limit = pLimit(Math.max(1, role.concurrency));
      this.limits.set(key, limit);
    }
    return limit(fn);
  }
}
