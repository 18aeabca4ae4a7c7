import type { CallOptions, Verifier, VerifyRequest } from '../../core/roles.js';
import type { Evaluation } from '../../core/types.js';
import { EMBEDDED_CONCURRENCY, MicroBatcher, SCORE_BATCH_WINDOW_MS } from './batcher.js';
import { pngToTensor } from './image.js';
import { UserError } from '../../core/errors.js';
import { loadModel, ort, type ModelSession } from './onnx.js';
import { encodePrompt, SPEC_LENGTH, SPEC_VERSION } from './spec.js';

export interface VerifierModelMeta {
  size: number;
  /** how the model reads the prompt: the parse rows of spec.ts, in the layout version it was trained on */
  prompt: { input: 'spec'; spec: { version: number; length: number } };
}

/**
 * The embedded yes/no verifier: P(image matches prompt) from pixels and the prompt, the NVILA verifier in small.
 * The model is a neural module network over the prompt's parse (see spec.ts and training/nets.py). Score = P(yes);
 * label = yes when P ≥ 0.5. Ranking by P(yes) orders yes-answers by confidence first and no-answers by low
 * confidence in no, as the official NVILA ranking does.
 */
export class EmbeddedVerifier implements Verifier {
  readonly name = 'embedded';
  readonly concurrency: number;
  private readonly batcher: MicroBatcher<{ pixels: Float32Array; spec: Int32Array }, number>;

  private constructor(
    private readonly session: ModelSession,
    readonly meta: VerifierModelMeta,
    maxBatch: number,
    concurrency: number,
  ) {
    this.concurrency = concurrency;
    this.batcher = new MicroBatcher(maxBatch, (reqs) => this.score(reqs), SCORE_BATCH_WINDOW_MS);
  }

  static async load(dir: string, opts: { maxBatch?: number; threads?: number; concurrency?: number } = {}): Promise<EmbeddedVerifier> {
    const { session, meta } = await loadModel<VerifierModelMeta>(dir, 'verifier', opts.threads);
    const p = meta.prompt;
    if (p?.input !== 'spec' || p.spec?.version !== SPEC_VERSION || p.spec.length !== SPEC_LENGTH) {
      throw new UserError(
        `${dir}/verifier.json: this version reads verifier models of prompt layout spec v${SPEC_VERSION} (${SPEC_LENGTH} ints); ` +
          `the model declares ${JSON.stringify(p ?? 'none')}`,
      );
    }
    return new EmbeddedVerifier(session, meta, opts.maxBatch ?? 64, opts.concurrency ?? EMBEDDED_CONCURRENCY);
  }

  checkPrompt(prompt: string): void {
    encodePrompt(prompt);
  }

  async verify(req: VerifyRequest, opts?: CallOptions): Promise<Evaluation> {
    opts?.signal?.throwIfAborted();
    const spec = encodePrompt(req.prompt);
    // decoded here, not in the batch: a broken image fails its own call only
    const pixels = new Float32Array(3 * this.meta.size * this.meta.size);
    await pngToTensor(req.image, this.meta.size, pixels, 0);
    const p = await this.batcher.submit({ pixels, spec }, opts?.signal);
    return { score: p, label: p >= 0.5 ? 'yes' : 'no', raw: `P(yes)=${p.toFixed(4)}` };
  }

  async score(reqs: Array<{ pixels: Float32Array; spec: Int32Array }>): Promise<number[]> {
    const { size } = this.meta;
    const per = 3 * size * size;
    const images = new Float32Array(reqs.length * per);
    reqs.forEach((r, i) => images.set(r.pixels, i * per));
    const spec = new BigInt64Array(reqs.length * SPEC_LENGTH);
    reqs.forEach((r, i) => r.spec.forEach((v, j) => (spec[i * SPEC_LENGTH + j] = BigInt(v))));
    const out = await this.session.run({
      image: new ort.Tensor('float32', images, [reqs.length, 3, size, size]),
      spec: new ort.Tensor('int64', spec, [reqs.length, SPEC_LENGTH]),
    });
    const logits = out.logit!.data as Float32Array;
    return Array.from(logits, (z) => 1 / (1 + Math.exp(-z)));
  }
}
