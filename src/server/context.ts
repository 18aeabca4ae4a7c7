import type { RoleInfo, RoleSet } from '../core/roles.js';

/** What a request handler gets: the roles, how to call them, and a signal that fires when the client goes away. */
export interface HandlerContext {
  roles: Partial<RoleSet>;
  /** most pixels (n × width × height) one image request may ask for */
  maxPixels: number;
  signal: AbortSignal;
  /** `count` calls of a role, admitted to its model's queue together or refused with 429 (ModelQueues) */
  calls<T>(role: RoleInfo, count: number, make: (i: number) => Promise<T>): Promise<T[]>;
}
