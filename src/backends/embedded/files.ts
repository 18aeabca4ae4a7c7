import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The models shipped with the package: `<package>/models/`. */
export const MODELS_DIR = fileURLToPath(new URL('../../../models/', import.meta.url));

export function embeddedModelsPresent(dir = MODELS_DIR): boolean {
  return existsSync(path.join(dir, 'generator.onnx')) && existsSync(path.join(dir, 'verifier.onnx'));
}
