/**
 * Replicate (https://replicate.com) over its HTTP API: FLUX.1 [dev] (`black-forest-labs/flux-dev`) as generator and
 * FLUX.1 Kontext [pro] (`black-forest-labs/flux-kontext-pro`) as corrector, or other models of that input shape.
 *
 * One image is one prediction of an official model: `POST /v1/models/{owner}/{name}/predictions` with
 * `Prefer: wait`, so that a fast model answers in that request; a prediction still starting or processing is
 * polled at its `urls.get` until it succeeds or fails, and cancelled (`urls.cancel`) when the call is. The output
 * (a URL, or a list of them) is downloaded and converted to PNG. The token comes from $REPLICATE_API_TOKEN
 * (`apiKeyEnv`); `baseUrl` replaces `https://api.replicate.com/v1` (a proxy, or a local server in tests).
 */
import { ModelOutputError } from '../../core/errors.js';
import { correctorInstruction, type Corrector, type Generator } from '../../core/roles.js';
import type { Image } from '../../core/types.js';
import { imageCorrector, imageFromUrl, imageGenerator, pngDataUrl } from '../http/images.js';
import { BackendError, ensureOk, readReliability, ReliableClient, sleep } from '../http/reliability.js';
import { readApiKey, refuseInlineSecrets } from '../http/secrets.js';
import { OptionReader } from '../options.js';

export const REPLICATE_API = 'https://api.replicate.com/v1';

interface Prediction {
  id?: string;
  status?: 'starting' | 'processing' | 'succeeded' | 'failed' | 'canceled' | 'aborted';
  output?: unknown;
  error?: unknown;
  urls?: { get?: string; cancel?: string };
}

export function createReplicateBackend(options: Record<string, unknown> = {}): { generator: Generator; corrector: Corrector } {
  refuseInlineSecrets('replicate', options);
  const r = new OptionReader('replicate', options);
  const baseUrl = r.string('baseUrl', REPLICATE_API).replace(/\/+$/, '');
  const token = readApiKey('replicate', r.string('apiKeyEnv'), 'REPLICATE_API_TOKEN', baseUrl === REPLICATE_API);
  const model = r.string('model', 'black-forest-labs/flux-dev');
  const correctorModel = r.string('correctorModel', 'black-forest-labs/flux-kontext-pro');
  const steps = r.int('steps', 0, 1) || undefined;
  const guidance = r.number('guidance', undefined, 0, 10);
  const pollMs = r.int('pollMs', 1000, 1);
  const extraInput = r.record('extraInput') ?? {};
  const rel = readReliability(r, { timeoutMs: 300_000, concurrency: 4 });
  r.check();
  const http = new ReliableClient('replicate', rel);
  const headers = { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };

  const predict = async (name: string, input: Record<string, unknown>, signal: AbortSignal, what: string): Promise<Image> => {
    const url = `${baseUrl}/models/${name}/predictions`;
    const body = JSON.stringify({ input: { ...input, ...extraInput } });
    const created = await ensureOk(await http.fetch(url, { method: 'POST', headers: { ...headers, prefer: 'wait' }, body, signal }), `replicate ${name}`);
    let p = (await created.json()) as Prediction;
    try {
      while (p.status === 'starting' || p.status === 'processing') {
        if (!p.urls?.get) throw new ModelOutputError(`${what}: replicate's prediction has no urls.get to poll`);
        await sleep(pollMs, signal);
        p = (await (await ensureOk(await http.fetch(p.urls.get, { headers, signal }), `replicate ${name}`)).json()) as Prediction;
      }
    } catch (err) {
      // best effort: a prediction nobody waits for would still run, and be billed
      if (signal.aborted && p.urls?.cancel) void globalThis.fetch(p.urls.cancel, { method: 'POST', headers }).catch(() => undefined);
      throw err;
    }
    if (p.status !== 'succeeded') throw new BackendError(`replicate ${name}: prediction ${p.status ?? 'without a status'}: ${String(p.error ?? 'no error given')}`);
    const out = Array.isArray(p.output) ? p.output[0] : p.output;
    if (typeof out !== 'string') throw new ModelOutputError(`${what}: replicate's prediction succeeded without an output URL`);
    return imageFromUrl(out, http.fetch, signal, what);
  };

  const generator = imageGenerator(http, {
    name: `replicate:${model}`,
    identity: `replicate:${model}:${steps ?? ''}:${guidance ?? ''}:${JSON.stringify(extraInput)}`,
    make: (req, signal) =>
      predict(
        model,
        {
          prompt: req.prompt,
          seed: req.seed,
          aspect_ratio: '1:1',
          output_format: 'png',
          num_outputs: 1,
          ...(steps ? { num_inference_steps: steps } : {}),
          ...(guidance !== undefined ? { guidance } : {}),
        },
        signal,
        'generate',
      ),
  });
  const corrector = imageCorrector(http, {
    name: `replicate:${correctorModel}`,
    make: (req, signal) =>
      predict(
        correctorModel,
        { prompt: correctorInstruction(req.prompt, req.reflection), input_image: pngDataUrl(req.image), seed: req.seed, aspect_ratio: 'match_input_image', output_format: 'png' },
        signal,
        'correct',
      ),
  });
  return { generator, corrector };
}

export { replicateProvider } from './provider.js';
