import type { CallOptions, GenerateRequest, Generator } from '../../core/roles.js';
import type { Image } from '../../core/types.js';
import { EMBEDDED_CONCURRENCY, FLOW_BATCH_WINDOW_MS, MicroBatcher } from './batcher.js';
import { tensorToPng } from './image.js';
import { gaussianNoise } from './noise.js';
import { loadModel, ort, type ModelSession } from './onnx.js';
import { Tokenizer } from './tokenizer.js';
import { checkFlowPrompt, fixedSize } from './check.js';

export interface FlowModelMeta {
  size: number;
  maxTokens: number;
  vocab: string[];
  steps?: number;
  guidance?: number;
}

export interface FlowGeneratorOptions {
  /** Euler steps from noise to image */
  steps?: number;
  /** classifier-free guidance scale (1 = none) */
  guidance?: number;
  maxBatch?: number;
  /** how long a batch that is not full waits for more requests, after the previous batch or its first request (MicroBatcher) */
  batchWindowMs?: number;
  threads?: number;
  /** calls in flight (default EMBEDDED_CONCURRENCY) */
  concurrency?: number;
}

/**
 * The embedded text-to-image model: rectified flow in pixel space. x_t = (1 − t)·x0 + t·ε, the network predicts
 * v = ε − x0, and sampling integrates t from 1 to 0 with Euler steps and classifier-free guidance. The seed sets ε.
 */
export class FlowGenerator implements Generator {
  readonly name = 'embedded';
  readonly concurrency: number;
  readonly steps: number;
  readonly guidance: number;
  readonly identity: string;
  private readonly batcher: MicroBatcher<{ tokens: number[]; seed: number }, Image>;

  private constructor(
    private readonly session: ModelSession,
    readonly meta: FlowModelMeta,
    readonly tokenizer: Tokenizer,
    opts: FlowGeneratorOptions,
    modelHash: string,
  ) {
    this.concurrency = opts.concurrency ?? EMBEDDED_CONCURRENCY;
    this.steps = opts.steps ?? meta.steps ?? 20;
    this.guidance = opts.guidance ?? meta.guidance ?? 3;
    this.batcher = new MicroBatcher(
      opts.maxBatch ?? 32,
      (reqs, signals) => this.sampleUnlessAborted(reqs.map((r, i) => ({ ...r, signal: signals[i] }))),
      opts.batchWindowMs ?? FLOW_BATCH_WINDOW_MS,
    );
    this.identity = `embedded:${modelHash}:steps=${this.steps}:guidance=${this.guidance}`;
  }

  static async load(dir: string, opts: FlowGeneratorOptions = {}): Promise<FlowGenerator> {
    const { session, meta, hash } = await loadModel<FlowModelMeta>(dir, 'generator', opts.threads);
    return new FlowGenerator(session, meta, new Tokenizer(meta.vocab, meta.maxTokens), opts, hash);
  }

  checkPrompt(prompt: string): void {
    checkFlowPrompt(this.tokenizer, prompt);
  }

  checkSize(size: number): void {
    fixedSize('generator', this.meta.size, size);
  }

  async generate(req: GenerateRequest, opts?: CallOptions): Promise<Image> {
    opts?.signal?.throwIfAborted();
    return this.batcher.submit({ tokens: this.tokenizer.encode(req.prompt), seed: req.seed }, opts?.signal);
  }

  /** Sample a batch: cond and uncond halves in one forward pass per step. */
  async sample(reqs: ReadonlyArray<{ tokens: number[]; seed: number }>): Promise<Image[]> {
    // without signals every request is made
    return (await this.sampleUnlessAborted(reqs)).map((image) => image!);
  }

  /** As `sample`, but a request whose signal aborts leaves the batch at the next step and gets no image. */
  async sampleUnlessAborted(reqs: ReadonlyArray<FlowRequest>): Promise<Array<Image | undefined>> {
    const { size, maxTokens } = this.meta;
    const x = await sampleFlow(this.session, { size, maxTokens, steps: this.steps, guidance: this.guidance, nullTokens: this.tokenizer.nullTokens() }, reqs);
    const per = 3 * size * size;
    return Promise.all(reqs.map((r, i) => (r.signal?.aborted ? undefined : tensorToPng(x, i * per, size))));
  }
}

export interface FlowSampling {
  size: number;
  maxTokens: number;
  steps: number;
  guidance: number;
  nullTokens: number[];
  /**
   * Where integration starts, t in (0, 1]: below 1 each request's `image` noised to that t is the start (SDEdit), so
   * the image's layout survives and fewer steps run (⌈steps·start⌉). 1 starts from pure noise.
   */
  start?: number;
}

/**
 * One request of a flow batch; `image` (CHW in [−1, 1]) and `region` (size × size, 1 where the edit goes) condition the
 * corrector, `signal` may take it out of the batch.
 */
export interface FlowRequest {
  tokens: number[];
  seed: number;
  image?: Float32Array;
  region?: Float32Array;
  /**
   * size × size, 1 where the result keeps `image`: those pixels are put back on the straight path from `image` to the
   * seed's noise after every step, so they end as `image` exactly while the rest is drawn around them.
   */
  keep?: Float32Array;
  signal?: AbortSignal;
}

/**
 * Euler integration of a rectified flow from the seeds' noise at t = 1 to images at t = 0, with classifier-free
 * guidance on the tokens: the conditional and unconditional rows go through one forward pass per step. `image`
 * (CHW in [−1, 1] per request) and `region` are extra inputs given to both rows (the corrector's). A request
 * whose signal has aborted leaves the batch before the next step (its rows are computed no more; its part of the
 * result is left unfinished); the sampling ends early when none is left.
 */
export async function sampleFlow(session: ModelSession, o: FlowSampling, reqs: ReadonlyArray<FlowRequest>): Promise<Float32Array> {
  const { size } = o;
  const per = 3 * size * size;
  const guided = o.guidance !== 1;
  const start = o.start ?? 1;
  const x = new Float32Array(reqs.length * per);
  const noise: Float32Array[] = [];
  reqs.forEach((r, i) => {
    const eps = gaussianNoise(r.seed, per);
    if (r.keep) {
      if (!r.image) throw new Error("sampleFlow: keeping pixels needs the request's image");
      noise[i] = eps.slice();
    }
    if (start < 1) {
      if (!r.image) throw new Error("sampleFlow: a start below 1 needs each request's image");
      for (let k = 0; k < per; k++) eps[k] = (1 - start) * r.image[k]! + start * eps[k]!;
    }
    x.set(eps, i * per);
  });
  const steps = Math.max(1, Math.ceil(o.steps * start));
  /** the requests still sampled (indices into reqs), and their token and image inputs */
  let live: number[] = [];
  let feeds: Record<string, ort.Tensor> = {};
  for (let s = 0; s < steps; s++) {
    const still = reqs.flatMap((r, i) => (r.signal?.aborted ? [] : [i]));
    if (!still.length) break;
    if (still.length !== live.length) {
      live = still;
      feeds = conditioning(o, reqs, live);
    }
    const n = live.length;
    const rows = guided ? 2 * n : n;
    const t = start * (1 - s / steps);
    const tNext = start * (1 - (s + 1) / steps);
    const xin = new Float32Array(rows * per);
    live.forEach((i, j) => {
      const xi = x.subarray(i * per, (i + 1) * per);
      xin.set(xi, j * per);
      if (guided) xin.set(xi, (n + j) * per);
    });
    const out = await session.run({
      ...feeds,
      x: new ort.Tensor('float32', xin, [rows, 3, size, size]),
      t: new ort.Tensor('float32', new Float32Array(rows).fill(t), [rows]),
    });
    const v = out.v!.data as Float32Array;
    const dt = tNext - t;
    live.forEach((i, j) => {
      for (let k = 0; k < per; k++) {
        const vc = v[j * per + k]!;
        const vel = guided ? v[(n + j) * per + k]! + o.guidance * (vc - v[(n + j) * per + k]!) : vc;
        x[i * per + k] = x[i * per + k]! + dt * vel;
      }
      const { keep, image } = reqs[i]!;
      if (keep) pinKept(x.subarray(i * per, (i + 1) * per), keep, image!, noise[i]!, tNext);
    });
  }
  return x;
}

/** x's pixels where `keep` is 1, set to where the straight path from `image` to `eps` is at t. */
function pinKept(x: Float32Array, keep: Float32Array, image: Float32Array, eps: Float32Array, t: number): void {
  const plane = keep.length;
  for (let p = 0; p < plane; p++) {
    if (!keep[p]) continue;
    for (let c = 0; c < 3; c++) {
      const k = c * plane + p;
      x[k] = (1 - t) * image[k]! + t * eps[k]!;
    }
  }
}

/** The token inputs (and the corrector's previous images and edit regions) of the requests `live`: their conditional rows, then (guided) their unconditional ones. */
function conditioning(o: FlowSampling, reqs: ReadonlyArray<FlowRequest>, live: number[]): Record<string, ort.Tensor> {
  const { size, maxTokens } = o;
  const n = live.length;
  const guided = o.guidance !== 1;
  const rows = guided ? 2 * n : n;
  const tokens = new BigInt64Array(rows * maxTokens);
  live.forEach((i, j) => {
    reqs[i]!.tokens.forEach((id, k) => (tokens[j * maxTokens + k] = BigInt(id)));
    if (guided) o.nullTokens.forEach((id, k) => (tokens[(n + j) * maxTokens + k] = BigInt(id)));
  });
  const feeds: Record<string, ort.Tensor> = { tokens: new ort.Tensor('int64', tokens, [rows, maxTokens]) };
  // the corrector's inputs beside x_t, the same in the conditional and the unconditional row
  for (const name of ['image', 'region'] as const) {
    const first = live.map((i) => reqs[i]![name]).find((input) => input);
    if (!first) continue;
    const plane = first.length;
    const channels = plane / (size * size);
    const data = new Float32Array(rows * plane);
    live.forEach((i, j) => {
      const input = reqs[i]![name];
      if (input?.length !== plane) throw new Error(`sampleFlow: every request of a batch conditioned on ${name} needs its ${name}, of one size`);
      data.set(input, j * plane);
      if (guided) data.set(input, (n + j) * plane);
    });
    feeds[name] = new ort.Tensor('float32', data, [rows, channels, size, size]);
  }
  return feeds;
}
