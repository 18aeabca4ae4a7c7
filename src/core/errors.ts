import type { Role } from './strategies.js';

/**
 * An error caused by what the user gave us (arguments, config, prompt files, images). The CLI prints its message
 * as one line on stderr and exits with code 2.
 */
export class UserError extends Error {
  override name = 'UserError';
}

/** Stopped by the user (Ctrl-C, SIGTERM): what was done is kept, and the message says how to continue. Exit 130. */
export class Interrupted extends Error {
  override name = 'Interrupted';
}

/** Some calls failed: the summary was printed and the run can be resumed to retry them. Exit 3. */
export class RunIncomplete extends Error {
  override name = 'RunIncomplete';
}

/** A model answered something we cannot use (malformed JSON, wrong shape). */
export class ModelOutputError extends Error {
  override name = 'ModelOutputError';
}

/** The search stopped early: a role's first calls (FAIL_FAST_CALLS, search/calls.ts) all failed with this message. */
export class RoleFailing extends Error {
  override name = 'RoleFailing';
  constructor(
    readonly role: Role,
    readonly calls: number,
    readonly reason: string,
  ) {
    super(`every ${role} call failed the same way (${calls} of ${calls}): ${reason}`);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
