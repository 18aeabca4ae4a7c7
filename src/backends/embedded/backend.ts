import path from 'node:path';
import { UserError } from '../../core/errors.js';
import type { RoleSet } from '../../core/roles.js';
import { FlowGenerator } from './generator.js';
import { MODELS_DIR } from './files.js';
import { EmbeddedVerifier } from './verifier.js';

export interface EmbeddedOptions {
  /** folder with generator.onnx/.json and verifier.onnx/.json (default: the models shipped with the package) */
  modelsDir?: string;
  /** Euler steps of the generator's flow (default: the model card's) */
  steps?: number;
  /** classifier-free guidance scale (default: the model card's) */
  guidance?: number;
  /** onnxruntime intra-op threads (default: all cores) */
  threads?: number;
  maxBatch?: number;
}

const KNOWN = new Set(['modelsDir', 'steps', 'guidance', 'threads', 'maxBatch']);

function num(o: Record<string, unknown>, key: string, min: number, integer: boolean): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !(v >= min) || (integer && !Number.isInteger(v))) {
    throw new UserError(`embedded backend: ${key} must be ${integer ? 'an integer' : 'a number'} ≥ ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** The embedded ShapeWorld models: generator and verifier (reflection roles join when their models ship). */
export async function createEmbeddedBackend(options: Record<string, unknown> = {}): Promise<Partial<RoleSet>> {
  for (const k of Object.keys(options)) {
    if (!KNOWN.has(k)) throw new UserError(`embedded backend: unknown option '${k}' (options: ${[...KNOWN].join(', ')})`);
  }
  const dir = typeof options.modelsDir === 'string' ? path.resolve(options.modelsDir) : MODELS_DIR;
  const threads = num(options, 'threads', 1, true);
  const maxBatch = num(options, 'maxBatch', 1, true);
  const steps = num(options, 'steps', 1, true);
  const guidance = num(options, 'guidance', 0, false);
  const [generator, verifier] = await Promise.all([
    FlowGenerator.load(dir, {
      ...(steps !== undefined ? { steps } : {}),
      ...(guidance !== undefined ? { guidance } : {}),
      ...(threads !== undefined ? { threads } : {}),
      ...(maxBatch !== undefined ? { maxBatch } : {}),
    }),
    EmbeddedVerifier.load(dir, { ...(threads !== undefined ? { threads } : {}) }),
  ]);
  return { generator, verifier };
}

