// Numerical check of an exported ONNX model with onnxruntime-node (the runtime the
// TypeScript side uses). Called by training/common.py after export:
//   node training/check_onnx.mjs spec.json
// spec.json: {model, tol, inputs: {name: {file, dtype, dims}}, outputs: {...}}
// Raw little-endian float32 / int64 files. Exits 1 if max |diff| > tol.
import { readFileSync } from 'node:fs';
import ort from 'onnxruntime-node';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function load(t) {
  const buf = readFileSync(t.file);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const data = t.dtype === 'int64' ? new BigInt64Array(ab) : new Float32Array(ab);
  return new ort.Tensor(t.dtype, data, t.dims);
}

const session = await ort.InferenceSession.create(spec.model);
const feeds = {};
for (const [name, t] of Object.entries(spec.inputs)) feeds[name] = load(t);
const t0 = performance.now();
const result = await session.run(feeds);
const ms = performance.now() - t0;
let worst = 0;
const parts = [];
for (const [name, t] of Object.entries(spec.outputs)) {
  const ref = load(t).data;
  const got = result[name];
  if (!got) throw new Error(`output ${name} missing; got ${Object.keys(result)}`);
  if (got.dims.join(',') !== t.dims.join(',')) throw new Error(`output ${name} dims ${got.dims} != ${t.dims}`);
  let m = 0;
  for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(ref[i] - got.data[i]));
  worst = Math.max(worst, m);
  parts.push(`${name}[${got.dims}] max|diff|=${m.toExponential(2)}`);
}
const msg = `onnxruntime-node ${ort.env.versions?.common ?? ''}: ${parts.join(', ')} (run ${ms.toFixed(1)} ms)`;
if (!(worst <= spec.tol)) {
  console.error(`FAIL ${msg} > tol ${spec.tol}`);
  process.exit(1);
}
console.log(`ok ${msg}`);
