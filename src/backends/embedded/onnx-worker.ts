/**
 * The worker thread of one embedded model (a piscina worker, started by `loadModel` in onnx.ts): it holds the
 * model's ONNX session and runs its forward passes, so that the main thread's event loop goes on meanwhile.
 */
import { workerData } from 'node:worker_threads';
import { ort, sessionOptions, type WireTensors } from './onnx.js';

const { bytes, threads } = workerData as { bytes: Uint8Array; threads?: number };
const session = await ort.InferenceSession.create(bytes, sessionOptions(threads));

/** `names`: the model's input and output names; feeds: one forward pass, its outputs. */
export default async function run(task: 'names' | WireTensors): Promise<{ inputNames: readonly string[]; outputNames: readonly string[] } | WireTensors> {
  if (task === 'names') return { inputNames: session.inputNames, outputNames: session.outputNames };
  const feeds = Object.fromEntries(Object.entries(task).map(([name, t]) => [name, new ort.Tensor(t.type, t.data, t.dims)]));
  const out = await session.run(feeds);
  return Object.fromEntries(Object.entries(out).map(([name, t]) => [name, { type: t.type, data: t.data, dims: t.dims }])) as WireTensors;
}
