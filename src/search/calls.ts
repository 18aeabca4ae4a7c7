import { setMaxListeners } from 'node:events';
import { RoleLimits } from '../core/limits.js';
import { errorMessage, RoleFailing } from '../core/errors.js';
import type { RoleInfo } from '../core/roles.js';
import type { Role } from '../core/strategies.js';
import { addCall, emptyRoleUsage, hasUsage, withUsage, type RoleUsage } from '../core/usage.js';
import type { CallEvent } from './io.js';
import type { SearchIO } from './io.js';

export interface CallSpec {
  key: string;
  role: Role;
  backend: RoleInfo;
  candidateId: string;
  inputIds: string[];
  prompt?: string;
  seed?: number;
}

/** What the search hears about each call, for progress display. */
export type CallListener = (event: CallEvent, replayed: boolean) => void;

/**
 * A role whose first calls all failed the same way (a wrong URL, a refused connection, a size the backend cannot
 * make): the search stops instead of spending the rest of the budget on the same error.
 */
export const FAIL_FAST_CALLS = 3;


/**
 * Runs role calls: one concurrency limit per role object or limit group (see RoleInfo.limitGroup), a finished call
 * from an earlier attempt is replayed instead of redone, and every call, finished or failed, becomes one event.
 */
export class CallRunner {
  private readonly limits = new RoleLimits();
  /** [start, end] of every call made in this attempt, per role (performance.now() ms) */
  private readonly intervals: Partial<Record<Role, Array<[number, number]>>> = {};
  /** what each role spent in this search, replayed calls included (as if the search had made them) */
  readonly usage: Partial<Record<Role, RoleUsage>> = {};
  /** calls of this attempt that failed (a resume makes them again) */
  readonly failures: CallEvent[] = [];
  private readonly succeeded = new Set<Role>();
  /** images made anew in this attempt: what an earlier attempt recorded about an image of that id is stale */
  private readonly fresh = new Set<string>();
  private readonly stopper = new AbortController();
  /** aborted when the caller's signal is, or when a role keeps failing (reason: RoleFailing) */
  readonly signal: AbortSignal;

  constructor(
    private readonly io: SearchIO,
    outer: AbortSignal | undefined,
    private readonly listener?: CallListener,
  ) {
    this.signal = outer ? AbortSignal.any([outer, this.stopper.signal]) : this.stopper.signal;
    // every call of the search in flight listens to this one signal (a budget of 32 is 32 listeners at once)
    setMaxListeners(0, this.signal);
  }

  /**
   * @param call     does the work
   * @param toEvent  what of the result goes into the event (and must be enough for `fromEvent`)
   * @param fromEvent rebuilds the result from a recorded event on resume
   */
  async run<T>(
    spec: CallSpec,
    call: (signal: AbortSignal | undefined) => Promise<T>,
    toEvent: (result: T) => Promise<Partial<CallEvent>>,
    fromEvent: (event: CallEvent) => Promise<T>,
  ): Promise<T> {
    const done = this.io.cached(spec.key);
    // a call is replayed only for the same inputs: after a failed call is retried, a later call with the same key
    // may read another image (a different chain head, or an image made anew) and must be made again
    if (done && sameInputs(done, spec) && !spec.inputIds.some((id) => this.fresh.has(id))) {
      try {
        const replayed = await fromEvent(done);
        this.count(done);
        this.succeeded.add(spec.role);
        this.listener?.(done, true);
        return replayed;
      } catch {
        // what the event names is gone (e.g. an image lost to a power cut): make the call again
      }
    }
    const base = {
      key: spec.key,
      role: spec.role,
      backend: spec.backend.name,
      inputIds: spec.inputIds,
      candidateId: spec.candidateId,
      ...(spec.prompt !== undefined ? { prompt: spec.prompt } : {}),
      ...(spec.seed !== undefined ? { seed: spec.seed } : {}),
    };
    let ms = 0;
    let result: T;
    let usage = {};
    try {
      // the backend's slot is held for the call alone; keeping its result happens outside it
      result = await this.limits.run(spec.backend, async () => {
        this.signal?.throwIfAborted();
        const started = performance.now();
        const out = await withUsage(() => call(this.signal));
        const ended = performance.now();
        ms = ended - started;
        (this.intervals[spec.role] ??= []).push([started, ended]);
        usage = out.usage;
        if (out.failed) throw out.error;
        return out.result as T;
      });
    } catch (err) {
      // an abort is not the call's failure: leave no event so that a resume redoes it
      if (this.signal.aborted) throw this.signal.reason ?? err;
      const event: CallEvent = { ...base, ...(hasUsage(usage) ? { usage } : {}), ms: round(ms), error: errorMessage(err), at: new Date().toISOString() };
      await this.io.record(event);
      this.count(event);
      this.failures.push(event);
      this.listener?.(event, false);
      this.failFast(spec.role);
      throw new CallFailed(event.error!, err);
    }
    const extra = await toEvent(result);
    this.succeeded.add(spec.role);
    if (extra.outputId) this.fresh.add(extra.outputId);
    const event: CallEvent = { ...base, ...extra, ...(hasUsage(usage) ? { usage } : {}), ms: round(ms), at: new Date().toISOString() };
    await this.io.record(event);
    this.count(event);
    this.listener?.(event, false);
    return result;
  }

  /**
   * `run`, but a call that fails (its event recorded) is returned as its CallFailed rather than thrown: the search
   * decides what a failed call means for it. Anything else (an abort, a bug) is thrown.
   */
  async attempt<T>(
    spec: CallSpec,
    call: (signal: AbortSignal | undefined) => Promise<T>,
    toEvent: (result: T) => Promise<Partial<CallEvent>>,
    fromEvent: (event: CallEvent) => Promise<T>,
  ): Promise<T | CallFailed> {
    try {
      return await this.run(spec, call, toEvent, fromEvent);
    } catch (err) {
      if (err instanceof CallFailed) return err;
      throw err;
    }
  }

  /**
   * Time each role had at least one call in flight in this attempt, ms: the union of its calls' intervals. Unlike
   * summed call time it never exceeds wall time when calls overlap (a batching backend, concurrent requests).
   */
  get busyPerRole(): Partial<Record<Role, number>> {
    const out: Partial<Record<Role, number>> = {};
    for (const [role, spans] of Object.entries(this.intervals) as Array<[Role, Array<[number, number]>]>) {
      const sorted = [...spans].sort((a, b) => a[0] - b[0]);
      let total = 0;
      let [s, e] = sorted[0]!;
      for (const [a, b] of sorted.slice(1)) {
        if (a > e) {
          total += e - s;
          [s, e] = [a, b];
        } else if (b > e) e = b;
      }
      out[role] = round(total + e - s);
    }
    return out;
  }

  private count(e: CallEvent): void {
    addCall((this.usage[e.role] ??= emptyRoleUsage()), e);
  }

  private failFast(role: Role): void {
    if (this.succeeded.has(role)) return;
    const failed = this.failures.filter((e) => e.role === role);
    if (failed.length < FAIL_FAST_CALLS) return;
    const first = firstLine(failed[0]!.error!);
    if (failed.every((e) => firstLine(e.error!) === first)) this.stopper.abort(new RoleFailing(role, failed.length, first));
  }

  /** summed call time per role, ms (replayed calls count what they took when made) */
  get timePerRole(): Partial<Record<Role, number>> {
    return Object.fromEntries(Object.entries(this.usage).map(([role, u]) => [role, u!.ms]));
  }
}

/** A role call failed; its event is recorded. The loop decides what the failure means for the search. */
export class CallFailed extends Error {
  override name = 'CallFailed';
  constructor(message: string, override readonly cause: unknown) {
    super(message);
  }
}

function sameInputs(e: CallEvent, spec: CallSpec): boolean {
  return (
    e.inputIds.length === spec.inputIds.length &&
    e.inputIds.every((id, i) => id === spec.inputIds[i]) &&
    (spec.prompt === undefined || e.prompt === spec.prompt)
  );
}

const firstLine = (text: string): string => text.split('\n')[0]!.trim();

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
