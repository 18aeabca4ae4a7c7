/**
 * Reliability for remote backends, shared by every HTTP family (OpenAI-compatible, Gemini, fal, ComfyUI):
 *
 * - a deadline per role call: `AbortSignal.timeout(timeoutMs)` combined with the call's own signal; retries and
 *   waits stop at the deadline, so a call fails within `timeoutMs` however the server behaves;
 * - retries on 429, 5xx and network errors, with exponential backoff and full jitter, honouring `Retry-After`
 *   (seconds or an HTTP date) when the server sends it;
 * - a requests-per-minute limiter (sliding window over request starts, retries included);
 * - a concurrency limit per backend instance, exposed to the search loop as the roles' `concurrency` and one
 *   shared `limitGroup`, and enforced here too for library callers;
 * - cancellation: the call's AbortSignal aborts the request in flight and any wait, and stops retries;
 * - errors leave with secrets scrubbed and without their `cause` chain (which may hold request headers).
 *
 * The SDKs' own retries are turned off; each SDK is given `client.fetch`, which does the retrying, so the policy is
 * the same for every family.
 */
import { errorMessage } from '../../core/errors.js';
import { reportUsage } from '../../core/usage.js';
import { OptionReader } from '../options.js';
import { scrubSecrets } from './secrets.js';

export interface ReliabilityOptions {
  /** deadline of one role call, retries and waits included (ms) */
  timeoutMs: number;
  /** retries after the first attempt */
  maxRetries: number;
  /** first backoff step (ms); attempt n waits a uniform random time in [0, min(max, base·2ⁿ)] */
  retryBaseMs: number;
  /** largest backoff step, and the longest Retry-After honoured (ms) */
  retryMaxMs: number;
  /** calls in flight at once */
  concurrency: number;
  /** requests started per minute (0 = no limit) */
  rpm: number;
}

export const RELIABILITY_KEYS = ['timeoutMs', 'maxRetries', 'retryBaseMs', 'retryMaxMs', 'concurrency', 'rpm'] as const;

export function readReliability(r: OptionReader, defaults: Partial<ReliabilityOptions> = {}): ReliabilityOptions {
  return {
    timeoutMs: r.int('timeoutMs', defaults.timeoutMs ?? 120_000, 1),
    maxRetries: r.int('maxRetries', defaults.maxRetries ?? 4, 0),
    retryBaseMs: r.int('retryBaseMs', defaults.retryBaseMs ?? 500, 0),
    retryMaxMs: r.int('retryMaxMs', defaults.retryMaxMs ?? 30_000, 0),
    concurrency: r.int('concurrency', defaults.concurrency ?? 4, 1),
    rpm: r.int('rpm', defaults.rpm ?? 0, 0),
  };
}

/** A remote call failed (after retries). The message is scrubbed of secrets. */
export class BackendError extends Error {
  override name = 'BackendError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(scrubSecrets(message));
  }
}

/** Retry-After in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const date = Date.parse(v);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** Exponential backoff with full jitter (attempt 0 is the first retry). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const cap = Math.min(maxMs, baseMs * 2 ** attempt);
  return Math.floor(random() * cap);
}

export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599);
}

function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error(typeof r === 'string' ? r : 'aborted');
  e.name = 'AbortError';
  return e;
}

/** Sleep that ends early (rejecting with the signal's reason) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** At most `limit` acquisitions at once; waiting is FIFO and abortable. */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {}

  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) throw abortReason(signal);
    if (this.active < this.limit) {
      this.active++;
      return this.releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const grant = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        const i = this.waiting.indexOf(grant);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(abortReason(signal!));
      };
      this.waiting.push(grant);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    return this.releaser();
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) next(); // the slot passes on directly
      else this.active--;
    };
  }
}

/** Sliding-window limiter: at most `rpm` request starts in any 60 s. */
export class RateLimiter {
  private readonly starts: number[] = [];
  private chain: Promise<void> = Promise.resolve();

  constructor(
    readonly rpm: number,
    private readonly windowMs = 60_000,
  ) {}

  /** Resolves when a request may start (FIFO). */
  take(signal?: AbortSignal): Promise<void> {
    if (this.rpm <= 0) return Promise.resolve();
    const turn = this.chain.then(async () => {
      for (;;) {
        const now = Date.now();
        while (this.starts.length && this.starts[0]! <= now - this.windowMs) this.starts.shift();
        if (this.starts.length < this.rpm) {
          this.starts.push(now);
          return;
        }
        await sleep(this.starts[0]! + this.windowMs - now, signal);
      }
    });
    this.chain = turn.catch(() => undefined);
    return turn;
  }
}

/**
 * The reliability layer of one backend instance. `limitGroup` is the object every role of the instance declares,
 * so the search loop gives them one shared limit.
 */
export class ReliableClient {
  readonly limitGroup: object = {};
  readonly concurrency: number;
  private readonly slots: Semaphore;
  private readonly limiter: RateLimiter;
  /** `fetch` with retries, backoff, Retry-After and the rate limit; hand it to SDKs. */
  readonly fetch: typeof fetch;

  /**
   * `finalFailure: 'error'` makes `fetch` throw a BackendError (instead of returning the last 429/5xx response, or
   * rethrowing the network error) once retries are spent — for SDKs that would otherwise retry again on top.
   */
  constructor(
    readonly backend: string,
    readonly opts: ReliabilityOptions,
    private readonly baseFetch: typeof fetch = (...args) => globalThis.fetch(...args),
    private readonly finalFailure: 'response' | 'error' = 'response',
  ) {
    this.concurrency = opts.concurrency;
    this.slots = new Semaphore(opts.concurrency);
    this.limiter = new RateLimiter(opts.rpm);
    this.fetch = (input, init) => this.retryingFetch(input, init);
  }

  private async retryingFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const signal = init?.signal ?? undefined;
    for (let attempt = 0; ; attempt++) {
      await this.limiter.take(signal);
      let res: Response;
      try {
        res = await this.baseFetch(input, init);
      } catch (err) {
        if (signal?.aborted) throw abortReason(signal);
        if (attempt >= this.opts.maxRetries) {
          if (this.finalFailure === 'error') throw new BackendError(`${this.backend}: request failed: ${errorMessage(err)}`);
          throw err;
        }
        await sleep(backoffDelay(attempt, this.opts.retryBaseMs, this.opts.retryMaxMs), signal);
        reportUsage({ retries: 1 });
        continue;
      }
      if (!isRetryableStatus(res.status)) return res;
      if (attempt >= this.opts.maxRetries) {
        if (this.finalFailure === 'error') await ensureOk(res, `${this.backend}: request failed after ${attempt + 1} attempts`);
        return res;
      }
      const after = parseRetryAfter(res.headers.get('retry-after'));
      await res.body?.cancel().catch(() => undefined);
      const wait = after !== undefined ? Math.min(after, this.opts.retryMaxMs) : backoffDelay(attempt, this.opts.retryBaseMs, this.opts.retryMaxMs);
      await sleep(wait, signal);
      reportUsage({ retries: 1 });
    }
  }

  /**
   * Run one role call: take a slot, give `fn` the call's deadline signal, and turn whatever it throws into an error
   * that is safe to record (secrets scrubbed, timeouts and cancellations named).
   */
  async run<T>(what: string, fn: (signal: AbortSignal) => Promise<T>, callSignal?: AbortSignal): Promise<T> {
    const deadline = AbortSignal.timeout(this.opts.timeoutMs);
    const signal = callSignal ? AbortSignal.any([callSignal, deadline]) : deadline;
    let release: (() => void) | undefined;
    try {
      release = await this.slots.acquire(signal);
      return await fn(signal);
    } catch (err) {
      if (callSignal?.aborted) throw abortReason(callSignal);
      if (deadline.aborted) throw new BackendError(`${this.backend}: ${what} timed out after ${this.opts.timeoutMs} ms`);
      throw this.wrap(what, err);
    } finally {
      release?.();
    }
  }

  /** An error safe to record: our own classes keep their type (message scrubbed); others become BackendError. */
  wrap(what: string, err: unknown): Error {
    if (err instanceof Error && (err.name === 'ModelOutputError' || err.name === 'UserError' || err instanceof BackendError)) {
      err.message = scrubSecrets(err.message);
      err.stack = undefined;
      return err;
    }
    const status = typeof (err as { status?: unknown })?.status === 'number' ? ((err as { status: number }).status) : undefined;
    return new BackendError(`${this.backend}: ${what} failed: ${errorMessage(err).split('\n')[0]}`, status);
  }
}

/** Read a response that must be OK; otherwise throw a BackendError carrying the status and a short body excerpt. */
export async function ensureOk(res: Response, what: string): Promise<Response> {
  if (res.ok) return res;
  const body = await res.text().catch(() => '');
  throw new BackendError(`${what}: HTTP ${res.status}${body ? ` ${body.slice(0, 300).replace(/\s+/g, ' ')}` : ''}`, res.status);
}
