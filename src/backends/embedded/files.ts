import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The models shipped with the package: `<package>/models/`. */
export const MODELS_DIR = fileURLToPath(new URL('../../../models/', import.meta.url));

export function embeddedModelsPresent(dir = MODELS_DIR): boolean {
  return existsSync(path.join(dir, 'generator.onnx')) && existsSync(path.join(dir, 'verifier.onnx'));
}

/**
 * Which models these are: a hash of the metadata files in `dir` (each names its training run and export time), so
 * that work keyed by it (queued eval jobs) is not replayed for models trained since. "none" without the folder.
 */
export function embeddedModelsFingerprint(dir = MODELS_DIR): string {
  if (!existsSync(dir)) return 'none';
  const hash = createHash('sha256');
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) hash.update(name).update(readFileSync(path.join(dir, name)));
  return hash.digest('hex').slice(0, 16);
}
