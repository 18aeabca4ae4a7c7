/**
 * What a role call cost, as the service reports it: tokens (OpenAI's `usage`, Gemini's `usageMetadata`) and the
 * retries the reliability layer made. Backends report into the call they run in (`reportUsage`); the search's call
 * runner opens one accumulator per call (`withUsage`), so role interfaces stay free of accounting and concurrent
 * calls never mix their numbers (AsyncLocalStorage follows each call through its awaits).
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface Usage {
  inputTokens?: number;
  outputTokens?: number;
  /** requests repeated after a retryable failure */
  retries?: number;
}

const current = new AsyncLocalStorage<Usage>();

/** Add to the usage of the call this code runs in (a no-op outside one). */
export function reportUsage(u: Usage): void {
  const acc = current.getStore();
  if (!acc) return;
  for (const k of ['inputTokens', 'outputTokens', 'retries'] as const) {
    const v = u[k];
    if (typeof v === 'number' && Number.isFinite(v) && v > 0) acc[k] = (acc[k] ?? 0) + v;
  }
}

/** Run `fn` with a fresh accumulator; `usage` is what was reported inside it, whether it resolved or threw. */
export async function withUsage<T>(fn: () => Promise<T>): Promise<{ result?: T; error?: unknown; failed: boolean; usage: Usage }> {
  const usage: Usage = {};
  try {
    const result = await current.run(usage, fn);
    return { result, failed: false, usage };
  } catch (error) {
    return { error, failed: true, usage };
  }
}

export const hasUsage = (u: Usage): boolean => Object.keys(u).length > 0;

/** What one role spent in a search: calls (failed ones included), images made, retries, tokens, call time. */
export interface RoleUsage {
  calls: number;
  failed: number;
  images: number;
  retries: number;
  inputTokens: number;
  outputTokens: number;
  /** summed call time, ms (calls of a batching backend overlap: this can exceed wall time) */
  ms: number;
}

export const emptyRoleUsage = (): RoleUsage => ({ calls: 0, failed: 0, images: 0, retries: 0, inputTokens: 0, outputTokens: 0, ms: 0 });

/** Add one call to a role's tally. */
export function addCall(u: RoleUsage, call: { ms: number; error?: string; outputId?: string; usage?: Usage }): void {
  u.calls++;
  if (call.error) u.failed++;
  else if (call.outputId) u.images++;
  u.retries += call.usage?.retries ?? 0;
  u.inputTokens += call.usage?.inputTokens ?? 0;
  u.outputTokens += call.usage?.outputTokens ?? 0;
  u.ms += call.ms;
}

/** A price per backend (by its name, e.g. `openai:gpt-4o`), in the user's currency; every field optional. */
export interface Price {
  perCall?: number;
  perImage?: number;
  perMillionInputTokens?: number;
  perMillionOutputTokens?: number;
}

/** The estimated price of a role's usage; null when no price is set for its backend. */
export function priceOf(u: RoleUsage, price: Price | undefined): number | null {
  if (!price) return null;
  return (
    (price.perCall ?? 0) * u.calls +
    (price.perImage ?? 0) * u.images +
    ((price.perMillionInputTokens ?? 0) * u.inputTokens) / 1e6 +
    ((price.perMillionOutputTokens ?? 0) * u.outputTokens) / 1e6
  );
}
