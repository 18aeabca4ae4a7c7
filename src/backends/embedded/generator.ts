import type { CallOptions, GenerateRequest, Generator } from '../../core/roles.js';
import type { Image } from '../../core/types.js';
import { MicroBatcher } from './batcher.js';
import { tensorToPng } from './image.js';
import { gaussianNoise } from './noise.js';
import { loadModel, ort } from './onnx.js';
import { Tokenizer } from './tokenizer.js';

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
  threads?: number;
}

/**
 * The embedded text-to-image model: rectified flow in pixel space. x_t = (1 − t)·x0 + t·ε, the network predicts
 * v = ε − x0, and sampling integrates t from 1 to 0 with Euler steps and classifier-free guidance. The seed sets ε.
 */
export class FlowGenerator implements Generator {
  readonly name = 'embedded';
  readonly concurrency = 64;
  readonly steps: number;
  readonly guidance: number;
  readonly identity: string;
  private readonly batcher: MicroBatcher<{ tokens: number[]; seed: number }, Image>;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly meta: FlowModelMeta,
    readonly tokenizer: Tokenizer,
    opts: FlowGeneratorOptions,
    modelHash: string,
  ) {
    this.steps = opts.steps ?? meta.steps ?? 20;
    this.guidance = opts.guidance ?? meta.guidance ?? 3;
    this.batcher = new MicroBatcher(opts.maxBatch ?? 32, (reqs) => this.sample(reqs));
    this.identity = `embedded:${modelHash}:steps=${this.steps}:guidance=${this.guidance}`;
  }

  static async load(dir: string, opts: FlowGeneratorOptions = {}): Promise<FlowGenerator> {
    const { session, meta, hash } = await loadModel<FlowModelMeta>(dir, 'generator', opts.threads);
    return new FlowGenerator(session, meta, new Tokenizer(meta.vocab, meta.maxTokens), opts, hash);
  }

  checkPrompt(prompt: string): void {
    this.tokenizer.encode(prompt);
  }

  async generate(req: GenerateRequest, opts?: CallOptions): Promise<Image> {
    opts?.signal?.throwIfAborted();
    return this.batcher.submit({ tokens: this.tokenizer.encode(req.prompt), seed: req.seed });
  }

  /** Sample a batch: cond and uncond halves in one forward pass per step. */
  async sample(reqs: Array<{ tokens: number[]; seed: number }>): Promise<Image[]> {
    const { size, maxTokens } = this.meta;
    const n = reqs.length;
    const per = 3 * size * size;
    const guided = this.guidance !== 1;
    const rows = guided ? 2 * n : n;
    const x = new Float32Array(n * per);
    reqs.forEach((r, i) => x.set(gaussianNoise(r.seed, per), i * per));
    const tokens = new BigInt64Array(rows * maxTokens);
    const nullTokens = this.tokenizer.nullTokens();
    reqs.forEach((r, i) => {
      r.tokens.forEach((id, j) => (tokens[i * maxTokens + j] = BigInt(id)));
      if (guided) nullTokens.forEach((id, j) => (tokens[(n + i) * maxTokens + j] = BigInt(id)));
    });
    const tokensTensor = new ort.Tensor('int64', tokens, [rows, maxTokens]);
    const xin = new Float32Array(rows * per);
    const tin = new Float32Array(rows);
    for (let s = 0; s < this.steps; s++) {
      const t = 1 - s / this.steps;
      const tNext = 1 - (s + 1) / this.steps;
      xin.set(x, 0);
      if (guided) xin.set(x, n * per);
      tin.fill(t);
      const out = await this.session.run({
        x: new ort.Tensor('float32', xin, [rows, 3, size, size]),
        t: new ort.Tensor('float32', tin, [rows]),
        tokens: tokensTensor,
      });
      const v = out.v!.data as Float32Array;
      const dt = tNext - t;
      for (let k = 0; k < n * per; k++) {
        const vc = v[k]!;
        const vel = guided ? v[n * per + k]! + this.guidance * (vc - v[n * per + k]!) : vc;
        x[k] = x[k]! + dt * vel;
      }
    }
    return Promise.all(reqs.map((_, i) => tensorToPng(x, i * per, size)));
  }
}
