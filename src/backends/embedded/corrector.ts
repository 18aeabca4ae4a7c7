import type { CallOptions, CorrectRequest, Corrector } from '../../core/roles.js';
import { correctorInstruction } from '../../core/roles.js';
import { UserError } from '../../core/errors.js';
import type { Image } from '../../core/types.js';
import { BACKGROUND, COLORS, SHAPES, type Color, type RGB, type Shape } from '../../shapeworld/shapes.js';
import { EMBEDDED_CONCURRENCY, FLOW_BATCH_WINDOW_MS, MicroBatcher } from './batcher.js';
import { checkFlowPrompt, fixedSize } from './check.js';
import { sampleFlow, type FlowModelMeta, type FlowGeneratorOptions } from './generator.js';
import { pngToTensor, tensorToPng } from './image.js';
import { loadModel, ort, type ModelSession } from './onnx.js';
import type { Perception } from './perception.js';
import { editRegion, regionPlanes, type RegionLayout } from './region.js';
import { Tokenizer } from './tokenizer.js';

export interface CorrectorMeta extends FlowModelMeta {
  /** how the previous image is seen: stacked on x_t (`channels`) or as attention tokens (`tokens`) */
  cond: 'channels' | 'tokens';
  /** where sampling starts (1: pure noise; below 1: the previous image noised to that t) */
  strength?: number;
  /** the model also reads where the edit goes (`region`, drawn by grounding the reflection on the perception's objects) */
  region?: boolean;
  /** its channels: 1 (one mask, the default) or 2 (what goes away or changes, then what is drawn) */
  regionChannels?: 1 | 2;
  /**
   * (two-channel region) the model was trained seeing an object changed in place as a flat silhouette of this gray
   * (0–255): the previous image's object pixels inside both channels, so that the new colour comes from the instruction
   */
  silhouette?: number;
  /**
   * (two-channel region) the model also reads the colour each drawn box is to have, in three more region planes: the
   * colours' RGB (0–255) as it was trained on them (region.ts)
   */
  colorHint?: Record<Color, RGB>;
  /** (with `colorHint`) the model also reads each drawn box's class, one more region plane per class, in this order */
  classHint?: Shape[];
}

export interface CorrectorOptions extends FlowGeneratorOptions {
  /** where sampling starts, in (0, 1]: 1 from pure noise, lower keeps more of the previous image */
  strength?: number;
  /**
   * (a model that reads an edit region) the pixels outside a non-empty region are the previous image's, exactly:
   * only the region is drawn anew (default true). Chosen on training prompts (corrector-alone bench) with the
   * one-channel model, 0.711 against 0.668 without: it moved or lost a third of what no edit touched. The erase/draw
   * model needs it less (test split 0.557 with it, 0.536 without; models/corrector.md).
   */
  keepOutside?: boolean;
}

/**
 * The embedded corrector: the generator's rectified flow, also conditioned on the previous image and reading
 * `refined prompt [Reflexion]: reflection` (models/corrector.onnx, reflection-tuned on GenRef-Shapes by
 * training/train_corrector.py). The seed sets the starting noise; guidance is on the instruction, the image (and the
 * edit region, for a model that reads one) goes to both halves.
 */
export class EmbeddedCorrector implements Corrector {
  readonly name = 'embedded';
  readonly concurrency: number;
  readonly steps: number;
  readonly guidance: number;
  readonly strength: number;
  readonly keepOutside: boolean;
  readonly identity: string;
  private readonly batcher: MicroBatcher<{ tokens: number[]; seed: number; image: Image; region?: Float32Array }, Image>;

  private constructor(
    private readonly session: ModelSession,
    readonly meta: CorrectorMeta,
    readonly tokenizer: Tokenizer,
    opts: CorrectorOptions,
    hash: string,
    private readonly perception: Perception | undefined,
  ) {
    this.concurrency = opts.concurrency ?? EMBEDDED_CONCURRENCY;
    this.steps = opts.steps ?? meta.steps ?? 12;
    this.guidance = opts.guidance ?? meta.guidance ?? 3;
    this.strength = opts.strength ?? meta.strength ?? 1;
    this.keepOutside = !!meta.region && (opts.keepOutside ?? true);
    this.batcher = new MicroBatcher(opts.maxBatch ?? 32, (reqs, signals) => this.sample(reqs, signals), opts.batchWindowMs ?? FLOW_BATCH_WINDOW_MS);
    const start = this.strength === 1 ? '' : `:strength=${this.strength}`;
    this.identity = `embedded-corrector:${hash}:steps=${this.steps}:guidance=${this.guidance}${start}${this.keepOutside ? ':keep-outside' : ''}`;
  }

  /** `perception` grounds reflections for a model that reads an edit region (it must be given for one). */
  static async load(dir: string, opts: CorrectorOptions = {}, perception?: Perception): Promise<EmbeddedCorrector> {
    checkStrength(opts.strength);
    const { session, meta, hash } = await loadModel<CorrectorMeta>(dir, 'corrector', opts.threads);
    checkStrength(meta.strength);
    if (meta.cond !== 'channels' && meta.cond !== 'tokens') throw new UserError(`${dir}/corrector.json: unknown conditioning '${String(meta.cond)}'`);
    if (meta.region && !perception) throw new UserError(`${dir}/corrector.json: this corrector reads an edit region, which needs the perception model (reflector.onnx)`);
    if (meta.region && ![undefined, 1, 2].includes(meta.regionChannels)) throw new UserError(`${dir}/corrector.json: regionChannels must be 1 or 2, got ${String(meta.regionChannels)}`);
    if (meta.silhouette !== undefined && !(meta.region && meta.regionChannels === 2 && Number.isInteger(meta.silhouette) && meta.silhouette >= 0 && meta.silhouette <= 255)) {
      throw new UserError(`${dir}/corrector.json: silhouette must be a gray level 0-255 of a two-channel region model, got ${String(meta.silhouette)}`);
    }
    if (meta.colorHint !== undefined && !(meta.region && meta.regionChannels === 2 && isPalette(meta.colorHint))) {
      throw new UserError(`${dir}/corrector.json: colorHint must give each of ${COLORS.join(', ')} an RGB of 0-255 integers, on a two-channel region model`);
    }
    if (meta.classHint !== undefined && !(meta.colorHint && isClassList(meta.classHint))) {
      throw new UserError(`${dir}/corrector.json: classHint must list each of ${SHAPES.join(', ')} once, on a model with a colorHint`);
    }
    return new EmbeddedCorrector(session, meta, new Tokenizer(meta.vocab, meta.maxTokens), opts, hash, meta.region ? perception : undefined);
  }

  checkPrompt(prompt: string): void {
    checkFlowPrompt(this.tokenizer, prompt); // one vocabulary, as the generator's
  }

  checkSize(size: number): void {
    fixedSize('corrector', this.meta.size, size);
  }

  /**
   * The instruction's tokens. A reflection too long to read in full keeps its first instructions (the reflector
   * writes the most important first); a refined prompt that alone is too long is the caller's error.
   */
  encode(req: Pick<CorrectRequest, 'prompt' | 'reflection'>): number[] {
    const items = req.reflection.items.slice();
    for (;;) {
      const text = items.length ? correctorInstruction(req.prompt, { text: items.join('\n'), items }) : req.prompt;
      if (this.tokenizer.words(text).length <= this.meta.maxTokens || !items.length) return this.tokenizer.encode(text);
      items.pop();
    }
  }

  async correct(req: CorrectRequest, opts?: CallOptions): Promise<Image> {
    opts?.signal?.throwIfAborted();
    const region = this.perception ? await this.region(req) : undefined;
    return this.draw(req, region, opts);
  }

  /** The edit region's planes, or undefined for a model without one. */
  get regionLayout(): RegionLayout | undefined {
    if (!this.meta.region) return undefined;
    return {
      channels: this.meta.regionChannels ?? 1,
      ...(this.meta.colorHint ? { hint: this.meta.colorHint } : {}),
      ...(this.meta.classHint ? { classes: this.meta.classHint } : {}),
    };
  }

  /** How many size × size planes its edit region has (0 without one). */
  get regionPlanes(): number {
    const layout = this.regionLayout;
    return layout ? regionPlanes(layout) : 0;
  }

  /** One correction with the edit region given rather than grounded (benches compare regions); none for a model without one. */
  async draw(req: CorrectRequest, region: Float32Array | undefined, opts?: CallOptions): Promise<Image> {
    opts?.signal?.throwIfAborted();
    if (!!region !== !!this.meta.region) throw new Error(`embedded corrector: this model reads ${this.meta.region ? 'an' : 'no'} edit region`);
    const plane = this.meta.size * this.meta.size;
    if (region && region.length !== this.regionPlanes * plane) throw new Error(`embedded corrector: an edit region of ${this.regionPlanes} × ${plane} values, got ${region.length}`);
    return this.batcher.submit({ tokens: this.encode(req), seed: req.seed, image: req.image, ...(region ? { region } : {}) }, opts?.signal);
  }

  /** Where the reflection's edits go on this image, as the perception reads it (empty when none can be grounded). */
  async region(req: Pick<CorrectRequest, 'image' | 'reflection' | 'seed'>): Promise<Float32Array> {
    const layout = this.regionLayout;
    if (!this.perception || !layout) throw new Error('embedded corrector: this model reads no edit region');
    const detections = await this.perception.detect(req.image);
    return editRegion(detections, req.reflection.items, this.meta.size, req.seed, layout);
  }

  /** A request whose signal aborts leaves the batch at the next step and gets no image. */
  private async sample(reqs: Array<{ tokens: number[]; seed: number; image: Image; region?: Float32Array }>, signals: ReadonlyArray<AbortSignal | undefined>): Promise<Array<Image | undefined>> {
    const { size, maxTokens } = this.meta;
    const per = 3 * size * size;
    const images = await Promise.all(
      reqs.map(async (r) => {
        const t = new Float32Array(per);
        await pngToTensor(r.image, size, t, 0);
        if (r.region && this.meta.silhouette !== undefined) silhouette(t, r.region, size, this.meta.silhouette);
        return t;
      }),
    );
    const x = await sampleFlow(
      this.session,
      { size, maxTokens, steps: this.steps, guidance: this.guidance, nullTokens: this.tokenizer.nullTokens(), start: this.strength },
      reqs.map((r, i) => ({ tokens: r.tokens, seed: r.seed, image: images[i]!, ...(r.region ? { region: r.region, ...this.kept(r.region) } : {}), signal: signals[i] })),
    );
    return Promise.all(reqs.map((_, i) => (signals[i]?.aborted ? undefined : tensorToPng(x, i * per, size))));
  }

  /** The pixels outside every mask plane of a non-empty region, when this corrector keeps them (the hints lie inside them). */
  private kept(region: Float32Array): { keep?: Float32Array } {
    const plane = this.meta.size * this.meta.size;
    const masks = region.subarray(0, (this.regionLayout?.channels ?? 0) * plane);
    if (!this.keepOutside || !masks.some((v) => v > 0)) return {};
    const keep = new Float32Array(plane).fill(1);
    for (let k = 0; k < masks.length; k++) if (masks[k]! > 0) keep[k % plane] = 0;
    return { keep };
  }
}

/** How far (of 255) from the background a pixel must be, in some channel, to be part of a shape (as in training). */
const OBJECT_PIXEL = 40;

/**
 * `image` (CHW in [−1, 1]) with its object pixels inside both planes of a two-channel `region` (an object changed in
 * place) set to the flat `gray` (0–255), in place: what a silhouette-trained corrector reads (training/train_corrector.py).
 * Only pixels inside the region change, and those are never kept (`keepOutside`).
 */
export function silhouette(image: Float32Array, region: Float32Array, size: number, gray: number): void {
  const plane = size * size;
  const value = gray / 127.5 - 1;
  for (let p = 0; p < plane; p++) {
    if (!(region[p]! > 0 && region[plane + p]! > 0)) continue;
    let shape = false;
    for (let c = 0; c < 3 && !shape; c++) shape = Math.abs(Math.round((image[c * plane + p]! + 1) * 127.5) - BACKGROUND[c]!) > OBJECT_PIXEL;
    if (shape) for (let c = 0; c < 3; c++) image[c * plane + p] = value;
  }
}

function isPalette(p: unknown): p is Record<Color, RGB> {
  if (typeof p !== 'object' || p === null) return false;
  const table = p as Record<string, unknown>;
  return Object.keys(table).length === COLORS.length && COLORS.every((c) => Array.isArray(table[c]) && table[c].length === 3 && table[c].every((v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 255));
}

function isClassList(p: unknown): p is Shape[] {
  return Array.isArray(p) && p.length === SHAPES.length && SHAPES.every((c) => p.includes(c));
}

/** A start for the flow, t in (0, 1]; undefined means the default. */
export function checkStrength(strength: number | undefined): void {
  if (strength !== undefined && !(strength > 0 && strength <= 1)) throw new UserError(`embedded corrector: strength must be in (0, 1], got ${strength}`);
}
