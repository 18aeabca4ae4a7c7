import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Piscina } from 'piscina';
import { UserError, errorMessage } from '../../core/errors.js';

/** One model's forward passes (onnxruntime's session, or its worker thread). */
export interface ModelSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>>;
}

export interface ModelFiles<M> {
  session: ModelSession;
  meta: M;
  /** first 16 hex digits of the ONNX file's SHA-256 */
  hash: string;
}

/** Tensors as they cross to and from a worker thread. */
export type WireTensors = Record<string, { type: ort.Tensor.Type; data: ort.Tensor.DataType; dims: readonly number[] }>;

export function sessionOptions(threads: number | undefined): ort.InferenceSession.SessionOptions {
  return { intraOpNumThreads: threads ?? 0, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
}

/**
 * onnxruntime-node runs a forward pass synchronously on the calling thread: on the main thread it would stop the
 * event loop for the whole pass (a server would neither read requests nor see clients go). So each model runs on a
 * worker thread of its own (piscina; idle, it keeps no process alive) — from compiled JavaScript. From TypeScript
 * sources (the tests) sessions run in-process: the worker is a compiled module, and the answers are the same.
 */
const inWorker = import.meta.url.endsWith('.js');

/** Load `<name>.onnx` and its `<name>.json` from a folder; missing or broken files are a UserError naming them. */
export async function loadModel<M>(dir: string, name: string, threads?: number): Promise<ModelFiles<M>> {
  const onnxPath = path.join(dir, `${name}.onnx`);
  if (!existsSync(onnxPath)) throw new UserError(`model file ${onnxPath} is missing`);
  const meta = readModelCard<M>(dir, name);
  try {
    const bytes = readFileSync(onnxPath);
    const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
    const session = inWorker ? await workerSession(bytes, threads) : await ort.InferenceSession.create(bytes, sessionOptions(threads));
    return { session, meta, hash };
  } catch (err) {
    throw new UserError(`cannot load model ${onnxPath}: ${errorMessage(err).split('\n')[0]}`);
  }
}

/** `<name>.json` of a folder, the model's card, without loading the model; a missing or broken file is a UserError. */
export function readModelCard<M>(dir: string, name: string): M {
  const metaPath = path.join(dir, `${name}.json`);
  try {
    return JSON.parse(readFileSync(metaPath, 'utf8')) as M;
  } catch (err) {
    throw new UserError(`cannot read model card ${metaPath}: ${errorMessage(err).split('\n')[0]}`);
  }
}

async function workerSession(bytes: Uint8Array, threads: number | undefined): Promise<ModelSession> {
  const pool = new Piscina({ filename: new URL('./onnx-worker.js', import.meta.url).href, minThreads: 1, maxThreads: 1, workerData: { bytes, threads } });
  const names = (await pool.run('names')) as { inputNames: string[]; outputNames: string[] };
  const wire = (tensors: Record<string, ort.Tensor>): WireTensors =>
    Object.fromEntries(Object.entries(tensors).map(([name, t]) => [name, { type: t.type, data: t.data, dims: t.dims }]));
  return {
    ...names,
    async run(feeds) {
      const out = (await pool.run(wire(feeds))) as WireTensors;
      return Object.fromEntries(Object.entries(out).map(([name, t]) => [name, new ort.Tensor(t.type, t.data, t.dims)]));
    },
  };
}

export { ort };
