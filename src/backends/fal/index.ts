/**
 * fal (https://fal.ai) through `@fal-ai/client`: FLUX.1 [dev] (`fal-ai/flux/dev`) as generator, FLUX.1 Kontext
 * (`fal-ai/flux-pro/kontext`) as corrector, or any fal endpoint with the same input/output shape.
 *
 * Calls go to the direct endpoint (`https://fal.run/<endpoint>`, the client's `run()`): one request per image, no
 * queue polling. The client's own retries are off in effect — its fetch is our reliability layer, which retries and
 * then fails with an error the client does not retry. `baseUrl` replaces `https://fal.run` (a proxy, or a local
 * server in tests). The key comes from $FAL_KEY (`apiKeyEnv`).
 */
import { createFalClient } from '@fal-ai/client';
import { ModelOutputError } from '../../core/errors.js';
import { correctorInstruction, type Corrector, type Generator } from '../../core/roles.js';
import type { Image } from '../../core/types.js';
import { imageCorrector, imageFromUrl, imageGenerator, pngDataUrl } from '../http/images.js';
import { OptionReader } from '../options.js';
import { readReliability, ReliableClient } from '../http/reliability.js';
import { readApiKey, refuseInlineSecrets } from '../http/secrets.js';

export const FAL_RUN_URL = 'https://fal.run';

export interface FalBackend {
  generator: Generator;
  corrector: Corrector;
}

interface FalImageOutput {
  images?: Array<{ url?: string }>;
}

export function createFalBackend(options: Record<string, unknown> = {}): FalBackend {
  refuseInlineSecrets('fal', options);
  const r = new OptionReader('fal', options);
  const baseUrl = r.string('baseUrl');
  const key = readApiKey('fal', r.string('apiKeyEnv'), 'FAL_KEY', baseUrl === undefined);
  const model = r.string('model', 'fal-ai/flux/dev');
  const correctorModel = r.string('correctorModel', 'fal-ai/flux-pro/kontext');
  const steps = r.int('steps', 0, 0) || undefined;
  const guidance = r.number('guidance', undefined, 0, 50);
  const correctorGuidance = r.number('correctorGuidance', undefined, 0, 50);
  const imageSize = readImageSize(r);
  const safetyChecker = r.has('safetyChecker') ? r.bool('safetyChecker', true) : undefined;
  const extraInput = r.record('extraInput') ?? {};
  const rel = readReliability(r, { timeoutMs: 300_000, concurrency: 4 });
  r.check();

  const rewrite: typeof fetch = (input, init) => {
    let url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (baseUrl && url.startsWith(`${FAL_RUN_URL}/`)) url = `${baseUrl.replace(/\/+$/, '')}/${url.slice(FAL_RUN_URL.length + 1)}`;
    return globalThis.fetch(url, init);
  };
  const http = new ReliableClient('fal', rel, rewrite, 'error');
  const client = createFalClient({
    ...(key ? { credentials: key } : { credentials: () => undefined }),
    fetch: http.fetch,
    retry: { maxRetries: 0 },
  });

  const common = (): Record<string, unknown> => ({
    num_images: 1,
    output_format: 'png',
    ...(safetyChecker !== undefined ? { enable_safety_checker: safetyChecker } : {}),
  });

  const call = async (endpoint: string, input: Record<string, unknown>, signal: AbortSignal, what: string): Promise<Image> => {
    const result = await client.run(endpoint, { input: { ...input, ...extraInput }, abortSignal: signal });
    const url = (result.data as FalImageOutput | undefined)?.images?.[0]?.url;
    if (typeof url !== 'string') throw new ModelOutputError(`${what}: fal answered no image (images[0].url)`);
    return imageFromUrl(url, http.fetch, signal, what);
  };

  const generator = imageGenerator(http, {
    name: `fal:${model}`,
    identity: `fal:${model}:${steps ?? ''}:${guidance ?? ''}:${JSON.stringify(imageSize ?? null)}:${JSON.stringify(extraInput)}`,
    make: (req, signal) =>
      call(
        model,
        {
          ...common(),
          prompt: req.prompt,
          seed: req.seed,
          ...(imageSize !== undefined ? { image_size: imageSize } : {}),
          ...(steps ? { num_inference_steps: steps } : {}),
          ...(guidance !== undefined ? { guidance_scale: guidance } : {}),
        },
        signal,
        'generate',
      ),
  });

  const corrector = imageCorrector(http, {
    name: `fal:${correctorModel}`,
    make: (req, signal) =>
      call(
        correctorModel,
        {
          ...common(),
          prompt: correctorInstruction(req.prompt, req.reflection),
          image_url: pngDataUrl(req.image),
          seed: req.seed,
          ...(correctorGuidance !== undefined ? { guidance_scale: correctorGuidance } : {}),
        },
        signal,
        'correct',
      ),
  });

  return { generator, corrector };
}

const SIZE_PRESETS = ['square_hd', 'square', 'portrait_4_3', 'portrait_16_9', 'landscape_4_3', 'landscape_16_9'] as const;

/** `size`: a fal preset name or a side in pixels (square). */
function readImageSize(r: OptionReader): string | { width: number; height: number } | undefined {
  if (!r.has('size')) return undefined;
  const v = r.options.size;
  if (typeof v === 'number') {
    const px = r.int('size', 1024, 64);
    return { width: px, height: px };
  }
  return r.oneOf('size', SIZE_PRESETS, 'square_hd');
}

export { falProvider } from './provider.js';
