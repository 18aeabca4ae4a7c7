import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { UserError, errorMessage } from '../../core/errors.js';

export interface ModelFiles<M> {
  session: ort.InferenceSession;
  meta: M;
  /** first 16 hex digits of the ONNX file's SHA-256 */
  hash: string;
}

/** Load `<name>.onnx` and its `<name>.json` from a folder; missing or broken files are a UserError naming them. */
export async function loadModel<M>(dir: string, name: string, threads?: number): Promise<ModelFiles<M>> {
  const onnxPath = path.join(dir, `${name}.onnx`);
  const metaPath = path.join(dir, `${name}.json`);
  if (!existsSync(onnxPath)) throw new UserError(`model file ${onnxPath} is missing`);
  let meta: M;
  try {
    meta = JSON.parse(readFileSync(metaPath, 'utf8')) as M;
  } catch (err) {
    throw new UserError(`cannot read model card ${metaPath}: ${errorMessage(err).split('\n')[0]}`);
  }
  try {
    const bytes = readFileSync(onnxPath);
    const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
    const session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: threads ?? 0,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
    return { session, meta, hash };
  } catch (err) {
    throw new UserError(`cannot load model ${onnxPath}: ${errorMessage(err).split('\n')[0]}`);
  }
}

export { ort };
