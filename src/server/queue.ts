import type { RoleInfo } from '../core/roles.js';
import { ApiError, badRequest } from './errors.js';
import { RoleLimits } from './models.js';

/**
 * The server's calls per model (a role, or the roles of one `limitGroup`): at most `maxCalls` of them admitted at
 * once, running or waiting. A request's calls are admitted together or the request is refused: 429 with
 * Retry-After while the queue is full, never unbounded waiting. Admitted calls wait for the role's concurrency
 * (RoleLimits, as in a search); one whose client has gone by then is never made, and from the moment the client
 * goes its calls no longer count against the queue (a call still running finishes its work, and is not waited for).
 */
export class ModelQueues {
  private readonly limits = new RoleLimits();
  private readonly admitted = new Map<object, number>();
  /** recent call time per model (moving average), for Retry-After */
  private readonly callMs = new Map<object, number>();

  constructor(readonly maxCalls: number) {}

  async calls<T>(role: RoleInfo, count: number, signal: AbortSignal, make: (i: number) => Promise<T>): Promise<T[]> {
    const key = role.limitGroup ?? role;
    if (count > this.maxCalls) {
      throw badRequest(`this request makes ${count} calls; this server queues at most ${this.maxCalls} per model (serve --max-queue)`, 'n', 'queue_too_small');
    }
    const now = this.admitted.get(key) ?? 0;
    if (now + count > this.maxCalls) {
      const retryAfter = this.retryAfterSeconds(key, now, role.concurrency);
      throw new ApiError(
        429,
        `${now} calls of this model are queued or running (at most ${this.maxCalls}); retry in ${retryAfter} s`,
        'rate_limit_exceeded',
        null,
        'rate_limit_error',
        { 'retry-after': String(retryAfter) },
      );
    }
    this.admitted.set(key, now + count);
    /** this request's calls still counted */
    let counted = count;
    const release = (calls: number) => {
      this.admitted.set(key, this.admitted.get(key)! - calls);
      counted -= calls;
    };
    const gone = () => release(counted);
    signal.addEventListener('abort', gone, { once: true });
    const one = async (i: number) => {
      try {
        return await this.limits.run(role, async () => {
          signal.throwIfAborted();
          const started = performance.now();
          const out = await make(i);
          const ms = performance.now() - started;
          this.callMs.set(key, 0.8 * (this.callMs.get(key) ?? ms) + 0.2 * ms);
          return out;
        });
      } finally {
        if (counted > 0) release(1);
      }
    };
    try {
      return await Promise.all(Array.from({ length: count }, (_, i) => one(i)));
    } finally {
      signal.removeEventListener('abort', gone);
    }
  }

  /** How long the queue ahead takes to drain at the recent call time: 1–60 s. */
  private retryAfterSeconds(key: object, queued: number, concurrency: number): number {
    const ms = this.callMs.get(key) ?? 1_000;
    return Math.min(60, Math.max(1, Math.ceil((ms * Math.ceil(queued / Math.max(1, concurrency))) / 1_000)));
  }
}
