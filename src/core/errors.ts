/**
 * An error caused by what the user gave us (arguments, config, prompt files, images). The CLI prints its message
 * as one line on stderr and exits with code 2.
 */
export class UserError extends Error {
  override name = 'UserError';
}

/** A model answered something we cannot use (malformed JSON, wrong shape). */
export class ModelOutputError extends Error {
  override name = 'ModelOutputError';
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
