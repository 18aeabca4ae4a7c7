/**
 * Replicate backend against a local server speaking Replicate's predictions API
 * (https://replicate.com/docs/reference/http#models.predictions.create, https://replicate.com/docs/topics/predictions/create-a-prediction):
 * POST /v1/models/{owner}/{name}/predictions with `{input}`, `Authorization: Bearer <token>` and `Prefer: wait`,
 * answered by a prediction `{id, status, output, error, urls: {get, cancel}}`; a prediction not yet done is polled
 * at `urls.get`; the output URL is downloaded.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createReplicateBackend } from '../../src/backends/replicate/index.js';
import { ModelOutputError, UserError } from '../../src/core/errors.js';
import { FAKE_KEY, isPng, json, jsonBody, startServer, tinyJpeg, tinyPng, type TestServer } from './helpers.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const reflection = { text: 'Recolor the cube red.', items: ['Recolor the cube red.'] };
const prediction = (id: string, status: string, extra: Record<string, unknown> = {}) => ({
  id,
  status,
  urls: { get: `${server!.url}/v1/predictions/${id}`, cancel: `${server!.url}/v1/predictions/${id}/cancel` },
  ...extra,
});

describe('replicate', () => {
  it('FLUX.1 [dev]: one prediction with Prefer: wait, seeded; the output URL is downloaded and converted to PNG', async () => {
    process.env.RF_TEST_REPLICATE_TOKEN = FAKE_KEY;
    const jpg = await tinyJpeg();
    server = await startServer((req, res) => {
      if (req.method === 'POST') return json(res, 201, prediction('p1', 'succeeded', { output: [`${server!.url}/files/out.jpg`] }));
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.end(jpg);
    });
    const b = createReplicateBackend({ baseUrl: `${server.url}/v1`, apiKeyEnv: 'RF_TEST_REPLICATE_TOKEN', steps: 28, guidance: 3 });
    const img = await b.generator.generate({ prompt: 'a red cube', seed: 7 });
    expect(isPng(img.png)).toBe(true);
    const [create, download] = server.requests;
    expect(create!.method).toBe('POST');
    expect(create!.path).toBe('/v1/models/black-forest-labs/flux-dev/predictions');
    expect(create!.headers.authorization).toBe(`Bearer ${FAKE_KEY}`);
    expect(create!.headers.prefer).toBe('wait');
    expect(jsonBody(create!)).toEqual({
      input: { prompt: 'a red cube', seed: 7, aspect_ratio: '1:1', output_format: 'png', num_outputs: 1, num_inference_steps: 28, guidance: 3 },
    });
    expect(download!.path).toBe('/files/out.jpg');
    expect(b.generator.name).toBe('replicate:black-forest-labs/flux-dev');
  });

  it('FLUX.1 Kontext correct: the image as a data URI, `prompt [Reflexion]: reflection`; a prediction still running is polled', async () => {
    let polls = 0;
    server = await startServer(async (req, res) => {
      if (req.method === 'POST') return json(res, 201, prediction('k1', 'starting'));
      if (req.path === '/v1/predictions/k1') {
        polls++;
        return json(res, 200, polls < 3 ? prediction('k1', 'processing') : prediction('k1', 'succeeded', { output: `${server!.url}/files/k1.png` }));
      }
      res.writeHead(200, { 'content-type': 'image/png' });
      res.end(await tinyPng());
    });
    const b = createReplicateBackend({ baseUrl: `${server.url}/v1`, pollMs: 5 });
    const img = await b.corrector.correct({ image: { png: new Uint8Array(await tinyPng()) }, prompt: 'a red cube', reflection, seed: 2 });
    expect(isPng(img.png)).toBe(true);
    expect(polls).toBe(3);
    const create = server.requests[0]!;
    expect(create.path).toBe('/v1/models/black-forest-labs/flux-kontext-pro/predictions');
    const { input } = jsonBody(create);
    expect(input).toMatchObject({ prompt: 'a red cube [Reflexion]: Recolor the cube red.', seed: 2, aspect_ratio: 'match_input_image', output_format: 'png' });
    expect(input.input_image).toMatch(/^data:image\/png;base64,/);
    expect(server.requests.filter((r) => r.method === 'GET' && r.path === '/v1/predictions/k1')).toHaveLength(3);
  });

  it('a failed prediction fails the call with its error; an input error (422) is not retried, a 429 is', async () => {
    server = await startServer((req, res, n) => {
      if (req.path.includes('kontext')) return json(res, 422, { title: 'Input validation failed', detail: 'input_image: bad' });
      if (n === 0) return json(res, 429, { detail: 'throttled' }, { 'retry-after': '0' });
      return json(res, 201, prediction('f1', 'failed', { error: 'NSFW content detected' }));
    });
    const b = createReplicateBackend({ baseUrl: `${server.url}/v1`, retryBaseMs: 1 });
    await expect(b.generator.generate({ prompt: 'x', seed: 1 })).rejects.toThrow(/prediction failed: NSFW content detected/);
    expect(server.requests).toHaveLength(2); // the 429, then the failed prediction
    await expect(b.corrector.correct({ image: { png: new Uint8Array(await tinyPng()) }, prompt: 'x', reflection, seed: 1 })).rejects.toThrow(/HTTP 422/);
    expect(server.requests).toHaveLength(3);
  });

  it('a success without an output URL is a ModelOutputError', async () => {
    server = await startServer((_req, res) => json(res, 201, prediction('e1', 'succeeded', { output: null })));
    const b = createReplicateBackend({ baseUrl: `${server.url}/v1` });
    await expect(b.generator.generate({ prompt: 'x', seed: 1 })).rejects.toBeInstanceOf(ModelOutputError);
  });

  it('a cancelled call cancels its prediction', async () => {
    server = await startServer((req, res) => {
      if (req.method === 'POST' && req.path.endsWith('/cancel')) return json(res, 200, prediction('c1', 'canceled'));
      if (req.method === 'POST') return json(res, 201, prediction('c1', 'starting'));
      return json(res, 200, prediction('c1', 'processing'));
    });
    const b = createReplicateBackend({ baseUrl: `${server.url}/v1`, pollMs: 5 });
    const controller = new AbortController();
    const call = b.generator.generate({ prompt: 'x', seed: 1 }, { signal: controller.signal });
    while (!server.requests.some((r) => r.method === 'GET')) await new Promise((r) => setTimeout(r, 5));
    controller.abort(new Error('stop'));
    await expect(call).rejects.toThrow('stop');
    for (let i = 0; i < 100 && !server.requests.some((r) => r.path.endsWith('/cancel')); i++) await new Promise((r) => setTimeout(r, 5));
    expect(server.requests.filter((r) => r.path === '/v1/predictions/c1/cancel')).toHaveLength(1);
  });

  it('without a baseUrl the token is required; a token option is refused', () => {
    delete process.env.RF_TEST_REPLICATE_TOKEN;
    expect(() => createReplicateBackend({ apiKeyEnv: 'RF_TEST_REPLICATE_TOKEN' })).toThrow(/set the environment variable RF_TEST_REPLICATE_TOKEN/);
    expect(() => createReplicateBackend({ token: 'r8_abc' })).toThrow(UserError);
  });
});
