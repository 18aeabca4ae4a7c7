import path from 'node:path';
import { UserError } from '../../core/errors.js';
import type { RoleSet } from '../../core/roles.js';
import { FlowGenerator } from './generator.js';
import { EmbeddedVerifier } from './verifier.js';
import { Perception } from './perception.js';
import { EmbeddedReflector } from './reflector.js';
import { EmbeddedRefiner } from './refiner.js';
import { checkStrength, EmbeddedCorrector } from './corrector.js';
import { existsSync } from 'node:fs';
import { modelsDirOf, readsLayouts } from './check.js';

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
  /** the corrector's start, in (0, 1]: 1 from pure noise (default: the model card's), lower keeps more of the image */
  strength?: number;
}

const KNOWN = new Set(['modelsDir', 'steps', 'guidance', 'threads', 'maxBatch', 'strength']);

function num(o: Record<string, unknown>, key: string, min: number, integer: boolean): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !(v >= min) || (integer && !Number.isInteger(v))) {
    throw new UserError(`embedded backend: ${key} must be ${integer ? 'an integer' : 'a number'} ≥ ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * The embedded ShapeWorld models: generator, verifier, reflector (perception from the verifier's object map),
 * prompt refiner and corrector (when the folder has one). The refiner writes the layout wording; it joins only with a generator that reads it (one whose
 * vocabulary and length cover the refiner's longest prompt), since a refined prompt the generator cannot read
 * would fail every chain.
 */
export async function createEmbeddedBackend(options: Record<string, unknown> = {}): Promise<Partial<RoleSet>> {
  for (const k of Object.keys(options)) {
    if (!KNOWN.has(k)) throw new UserError(`embedded backend: unknown option '${k}' (options: ${[...KNOWN].join(', ')})`);
  }
  const dir = modelsDirOf(options);
  const threads = num(options, 'threads', 1, true);
  const maxBatch = num(options, 'maxBatch', 1, true);
  const steps = num(options, 'steps', 1, true);
  const guidance = num(options, 'guidance', 0, false);
  const strength = num(options, 'strength', 0, false);
  checkStrength(strength);
  // the generator's and the corrector's sampler settings
  const flow = {
    ...(steps !== undefined ? { steps } : {}),
    ...(guidance !== undefined ? { guidance } : {}),
    ...(threads !== undefined ? { threads } : {}),
    ...(maxBatch !== undefined ? { maxBatch } : {}),
  };
  const [generator, verifier, perception] = await Promise.all([
    FlowGenerator.load(dir, flow),
    EmbeddedVerifier.load(dir, { ...(threads !== undefined ? { threads } : {}) }),
    Perception.load(dir, { ...(threads !== undefined ? { threads } : {}) }),
  ]);
  const reflector = new EmbeddedReflector(perception);
  if (!readsLayouts(generator.tokenizer)) return { generator, verifier, reflector };
  const roles: Partial<RoleSet> = { generator, verifier, reflector, refiner: new EmbeddedRefiner(perception) };
  // the corrector reads the refiner's wording too; a models folder without one serves the other four roles
  if (existsSync(path.join(dir, 'corrector.onnx'))) {
    roles.corrector = await EmbeddedCorrector.load(dir, { ...flow, ...(strength !== undefined ? { strength } : {}) });
  }
  return roles;
}

