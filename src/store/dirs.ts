import { mkdirSync, accessSync, statSync, constants } from 'node:fs';
import path from 'node:path';
import { UserError, errorMessage } from '../core/errors.js';

const codeOf = (err: unknown): string => (err as NodeJS.ErrnoException)?.code ?? errorMessage(err);

/**
 * Make an output folder and its missing parents, one level at a time, or fail at once with a UserError naming the
 * folder. (Node's recursive mkdir loops forever on some file systems, procfs among them, where mkdir answers
 * ENOENT under an existing directory.)
 */
export function makeOutputDir(dir: string, what = 'output directory'): void {
  const abs = path.resolve(dir);
  const { missing } = existingAncestor(dir, what);
  for (const p of missing) {
    try {
      mkdirSync(p);
    } catch (err) {
      if (codeOf(err) === 'EEXIST' && statSync(p).isDirectory()) continue;
      throw new UserError(`${what} ${dir} cannot be created (${codeOf(err)} at ${p})`);
    }
  }
  try {
    accessSync(abs, constants.W_OK);
  } catch (err) {
    throw new UserError(`${what} ${dir} is not writable (${codeOf(err)})`);
  }
}

/**
 * Check, writing nothing, that `makeOutputDir(dir)` can be expected to work: the nearest existing folder on the path
 * is a folder this process may write into (the output folder itself, or the one its missing parents go into). For
 * checking the user's options before anything is written; makeOutputDir still reports what only trying shows.
 */
export function checkOutputDir(dir: string, what = 'output directory'): void {
  const { existing, missing } = existingAncestor(dir, what);
  try {
    accessSync(existing, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new UserError(missing.length ? `${what} ${dir} cannot be created (${codeOf(err)} at ${missing[0]})` : `${what} ${dir} is not writable (${codeOf(err)})`);
  }
}

/** The nearest existing folder on `dir`'s path and the folders missing below it, outermost first. */
function existingAncestor(dir: string, what: string): { existing: string; missing: string[] } {
  const missing: string[] = [];
  for (let p = path.resolve(dir); ; p = path.dirname(p)) {
    try {
      if (!statSync(p).isDirectory()) throw new UserError(`${what} ${dir}: ${p} is not a directory`);
      return { existing: p, missing };
    } catch (err) {
      if (err instanceof UserError) throw err;
      if (codeOf(err) === 'ENOTDIR') throw new UserError(`${what} ${dir}: a part of the path is not a directory`);
      if (codeOf(err) !== 'ENOENT' || path.dirname(p) === p) throw new UserError(`${what} ${dir} is not usable (${codeOf(err)} at ${p})`);
      missing.unshift(p);
    }
  }
}
