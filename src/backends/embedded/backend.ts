import path from 'node:path';
import type { RoleSet } from '../../core/roles.js';
import { FlowGenerator } from './generator.js';
import { EmbeddedVerifier } from './verifier.js';
import { Perception } from './perception.js';
import { EmbeddedReflector } from './reflector.js';
import { EmbeddedRefiner } from './refiner.js';
import { checkStrength, EmbeddedCorrector } from './corrector.js';
import { existsSync } from 'node:fs';
import { OptionReader } from '../options.js';
import { EMBEDDED_CONCURRENCY } from './batcher.js';
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
  /** the generator's and corrector's batch window in ms (default 20): how long a batch that is not full waits for more, after the previous batch or its first request */
  batchWindowMs?: number;
  /** the corrector's start, in (0, 1]: 1 from pure noise (default: the model card's), lower keeps more of the image */
  strength?: number;
  /** (a corrector that reads an edit region) keep the pixels outside the region exactly (default true) */
  keepOutside?: boolean;
  /** calls in flight per role (default 64), grouped into batches of at most maxBatch */
  concurrency?: number;
}

/**
 * The embedded ShapeWorld models: generator, verifier, reflector (a learned object-map perception, models/reflector.md),
 * prompt refiner and corrector (when the folder has one). The refiner writes the layout wording; it joins only with a generator that reads it (one whose
 * vocabulary and length cover the refiner's longest prompt), since a refined prompt the generator cannot read
 * would fail every chain.
 */
export async function createEmbeddedBackend(options: Record<string, unknown> = {}): Promise<Partial<RoleSet>> {
  const r = new OptionReader('embedded', options);
  const modelsDir = r.string('modelsDir');
  const dir = modelsDirOf(modelsDir !== undefined ? { modelsDir } : {});
  const threads = r.int('threads', 0, 1) || undefined;
  const maxBatch = r.int('maxBatch', 0, 1) || undefined;
  const batchWindowMs = r.number('batchWindowMs', undefined, 0, 10_000);
  const steps = r.int('steps', 0, 1) || undefined;
  const guidance = r.number('guidance', undefined, 0);
  const strength = r.number('strength', undefined, 0);
  const keepOutside = r.bool('keepOutside', true);
  // calls each role takes at once; its micro-batcher groups them into batches of at most maxBatch
  const concurrency = r.int('concurrency', EMBEDDED_CONCURRENCY, 1);
  r.check();
  checkStrength(strength);
  // the generator's and the corrector's sampler settings
  const flow = {
    concurrency,
    ...(steps !== undefined ? { steps } : {}),
    ...(guidance !== undefined ? { guidance } : {}),
    ...(threads !== undefined ? { threads } : {}),
    ...(maxBatch !== undefined ? { maxBatch } : {}),
    ...(batchWindowMs !== undefined ? { batchWindowMs } : {}),
  };
  const [generator, verifier, perception] = await Promise.all([
    FlowGenerator.load(dir, flow),
    EmbeddedVerifier.load(dir, { concurrency, ...(threads !== undefined ? { threads } : {}) }),
    Perception.load(dir, { ...(threads !== undefined ? { threads } : {}) }),
  ]);
  const reflector = new EmbeddedReflector(perception, concurrency);
  if (!readsLayouts(generator.tokenizer)) return { generator, verifier, reflector };
  const roles: Partial<RoleSet> = { generator, verifier, reflector, refiner: new EmbeddedRefiner(perception, concurrency) };
  // the corrector reads the refiner's wording too; a models folder without one serves the other four roles
  if (existsSync(path.join(dir, 'corrector.onnx'))) {
    roles.corrector = await EmbeddedCorrector.load(dir, { ...flow, ...(strength !== undefined ? { strength } : {}), keepOutside }, perception);
  }
  return roles;
}

