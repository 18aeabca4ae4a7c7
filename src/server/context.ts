import type { RoleSet } from '../core/roles.js';
import type { RoleLimits } from './models.js';

/** What a request handler gets: the roles, their limits, and a signal that fires when the client goes away. */
export interface HandlerContext {
  roles: Partial<RoleSet>;
  limits: RoleLimits;
  /** most pixels (n × width × height) one image request may ask for */
  maxPixels: number;
  signal: AbortSignal;
}
