import type { Role } from '../core/strategies.js';
import type { Candidate, ChainSummary, Evaluation, PromptMeta, Reflection, SearchParams } from '../core/types.js';
import type { PriceSource } from '../core/prices.js';
import type { RoleUsage } from '../core/usage.js';

// a call's record is core's (core/io.ts): the search writes it, the store keeps it
export type { CallEvent } from '../core/io.js';

/**
 * `done`: every call succeeded. `incomplete`: the search ran to its end but some calls failed, or it stopped early
 * because a role kept failing; `--resume` makes the failed and missing calls. `interrupted`: stopped by a signal.
 * `failed`: an error that is not a call's (a bug, a full disk).
 */
export type RunStatus = 'running' | 'done' | 'incomplete' | 'failed' | 'interrupted';

/**
 * A run's estimated price per role and in all. `builtIn`: the backends priced from the built-in table
 * (src/core/prices.ts), with where and when their price was read; absent when every price came from the config.
 */
export interface RunCost {
  perRole: Partial<Record<Role, number>>;
  total: number;
  builtIn?: Record<string, PriceSource>;
}

/** run.json */
export interface RunRecord {
  version: 1;
  /** the run directory's name: `<yyyymmdd>-<hhmmss>-<prompt slug>-<8 hex digits>`, e.g. `20250301-142233-a-red-cube-1f2e3d4c` */
  id: string;
  prompt: string;
  meta?: PromptMeta;
  params: SearchParams;
  /** the run's configuration with secrets removed */
  config: unknown;
  /** backend name per role */
  backends: Partial<Record<Role, string>>;
  status: RunStatus;
  createdAt: string;
  updatedAt: string;
  /** filled in when the search finishes */
  result?: {
    bestId: string | null;
    bestScore: number | null;
    bestPath: string | null;
    chains: ChainSummary[];
    imagesGenerated: number;
    budget: number;
    /** summed call time per role, ms */
    timePerRole: Partial<Record<Role, number>>;
    /** ms each role had at least one call in flight, in the last attempt (≤ wall time; replayed calls take none) */
    busyPerRole?: Partial<Record<Role, number>>;
    wallMs: number;
    /** every call the run made, in all its attempts, per role (replayed calls counted once) */
    usage?: Partial<Record<Role, RoleUsage>>;
    /** estimated price per role and in all, from the config's `prices` and the built-in ones (absent without a price) */
    cost?: RunCost;
    /** the image whose verifier score reached `params.stopAt`, when the search stopped early */
    stoppedAt?: string;
    /** calls of the last attempt that failed, per role (absent when none did) */
    failedCalls?: Partial<Record<Role, number>>;
  };
  /** every image, with what made it and what was said of it */
  candidates: Candidate[];
  /** wall time of the attempts so far (a resumed run adds its own) */
  elapsedMs?: number;
  error?: string;
}

export type { Candidate, Evaluation, Reflection };
