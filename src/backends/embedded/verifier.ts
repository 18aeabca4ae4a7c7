import type { CallOptions, Verifier, VerifyRequest } from '../../core/roles.js';
import type { Evaluation } from '../../core/types.js';
import { MicroBatcher } from './batcher.js';
import { pngToTensor } from './image.js';
import { loadModel, ort } from './onnx.js';
import { Tokenizer } from './tokenizer.js';

export interface VerifierModelMeta {
  size: number;
  maxTokens: number;
  vocab: string[];
}

/**
 * The embedded yes/no verifier: P(image matches prompt) from pixels and the prompt, the NVILA verifier in small.
 * Score = P(yes); label = yes when P ≥ 0.5. Ranking by P(yes) orders yes-answers by confidence first and no-answers
 * by low confidence in no, as the official NVILA ranking does.
 */
export class EmbeddedVerifier implements Verifier {
  readonly name = 'embedded';
  readonly concurrency = 64;
  private readonly batcher: MicroBatcher<{ pixels: Float32Array; tokens: number[] }, number>;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly meta: VerifierModelMeta,
    readonly tokenizer: Tokenizer,
    maxBatch: number,
  ) {
    this.batcher = new MicroBatcher(maxBatch, (reqs) => this.score(reqs));
  }

  static async load(dir: string, opts: { maxBatch?: number; threads?: number } = {}): Promise<EmbeddedVerifier> {
    const { session, meta } = await loadModel<VerifierModelMeta>(dir, 'verifier', opts.threads);
    return new EmbeddedVerifier(session, meta, new Tokenizer(meta.vocab, meta.maxTokens), opts.maxBatch ?? 64);
  }

  checkPrompt(prompt: string): void {
    this.tokenizer.encode(prompt);
  }

  async verify(req: VerifyRequest, opts?: CallOptions): Promise<Evaluation> {
    opts?.signal?.throwIfAborted();
    const tokens = this.tokenizer.encode(req.prompt);
    // decoded here, not in the batch: a broken image fails its own call only
    const pixels = new Float32Array(3 * this.meta.size * this.meta.size);
    await pngToTensor(req.image, this.meta.size, pixels, 0);
    const p = await this.batcher.submit({ pixels, tokens });
    return { score: p, label: p >= 0.5 ? 'yes' : 'no', raw: `P(yes)=${p.toFixed(4)}` };
  }

  async score(reqs: Array<{ pixels: Float32Array; tokens: number[] }>): Promise<number[]> {
    const { size, maxTokens } = this.meta;
    const per = 3 * size * size;
    const images = new Float32Array(reqs.length * per);
    reqs.forEach((r, i) => images.set(r.pixels, i * per));
    const tokens = new BigInt64Array(reqs.length * maxTokens);
    reqs.forEach((r, i) => r.tokens.forEach((id, j) => (tokens[i * maxTokens + j] = BigInt(id))));
    const out = await this.session.run({
      image: new ort.Tensor('float32', images, [reqs.length, 3, size, size]),
      tokens: new ort.Tensor('int64', tokens, [reqs.length, maxTokens]),
    });
    const logits = out.logit!.data as Float32Array;
    return Array.from(logits, (z) => 1 / (1 + Math.exp(-z)));
  }
}
