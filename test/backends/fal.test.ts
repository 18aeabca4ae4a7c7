/**
 * fal backend against a local server following fal's direct-call wire format: POST https://fal.run/<endpoint> with
 * the input as JSON body and `Authorization: Key <FAL_KEY>`, answering the output JSON (`images[].url`).
 * Docs: https://docs.fal.ai/documentation/deployment/requests (run() goes straight to a runner) and
 * https://fal.ai/docs/documentation/model-apis/inference/queue.md (queue vs direct); model schemas:
 * https://fal.ai/models/fal-ai/flux/dev/api and https://fal.ai/models/fal-ai/flux-pro/kontext/api
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createFalBackend } from '../../src/backends/fal/index.js';
import { ModelOutputError, UserError } from '../../src/core/errors.js';
import { FAKE_KEY, isPng, json, jsonBody, startServer, tinyJpeg, tinyPng, type TestServer } from './helpers.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('fal', () => {
  it('FLUX.1 [dev] generate with seed; the image URL is downloaded and converted to PNG', async () => {
    process.env.RF_TEST_FAL_KEY = FAKE_KEY;
    const jpg = await tinyJpeg();
    server = await startServer((req, res) => {
      if (req.method === 'POST') return json(res, 200, { images: [{ url: `${server!.url}/files/a.jpg`, width: 8, height: 8, content_type: 'image/jpeg' }], seed: 7 });
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.end(jpg);
    });
    const b = createFalBackend({ baseUrl: server.url, apiKeyEnv: 'RF_TEST_FAL_KEY', steps: 20, guidance: 3.5, imageSize: 512 });
    const img = await b.generator.generate({ prompt: 'a red cube', seed: 7 });
    expect(isPng(img.png)).toBe(true);
    const req = server.requests[0]!;
    expect(req.path).toBe('/fal-ai/flux/dev');
    expect(req.headers.authorization).toBe(`Key ${FAKE_KEY}`);
    expect(jsonBody(req)).toMatchObject({ prompt: 'a red cube', seed: 7, num_inference_steps: 20, guidance_scale: 3.5, image_size: { width: 512, height: 512 }, num_images: 1 });
  });

  it('FLUX.1 Kontext correct: image as data URI, `prompt [Reflexion]: reflection`', async () => {
    const png = (await tinyPng()).toString('base64');
    server = await startServer((_req, res) => json(res, 200, { images: [{ url: `data:image/png;base64,${png}` }] }));
    const b = createFalBackend({ baseUrl: server.url });
    const img = await b.corrector.correct({ image: { png: new Uint8Array(await tinyPng()) }, prompt: 'a red cube', reflection: { text: 'Recolor the cube red.', items: ['Recolor the cube red.'] }, seed: 2 });
    expect(isPng(img.png)).toBe(true);
    const req = server.requests[0]!;
    expect(req.path).toBe('/fal-ai/flux-pro/kontext');
    const body = jsonBody(req);
    expect(body.prompt).toBe('a red cube [Reflexion]: Recolor the cube red.');
    expect(body.image_url).toMatch(/^data:image\/png;base64,/);
  });

  it('an answer without images is a ModelOutputError; a 4xx is not retried', async () => {
    server = await startServer((req, res) => (req.path.includes('kontext') ? json(res, 422, { detail: [{ msg: 'bad' }] }) : json(res, 200, { nothing: true })));
    const b = createFalBackend({ baseUrl: server.url });
    await expect(b.generator.generate({ prompt: 'x', seed: 1 })).rejects.toBeInstanceOf(ModelOutputError);
    const before = server.requests.length;
    await expect(b.corrector.correct({ image: { png: new Uint8Array(await tinyPng()) }, prompt: 'x', reflection: { text: 'y', items: ['y'] }, seed: 1 })).rejects.toThrow();
    expect(server.requests.length - before).toBe(1);
  });

  it('without a baseUrl the key is required; a key option is refused', () => {
    delete process.env.RF_TEST_FAL_KEY;
    expect(() => createFalBackend({ apiKeyEnv: 'RF_TEST_FAL_KEY' })).toThrow(UserError);
    expect(() => createFalBackend({ credentials: 'abc' })).toThrow(UserError);
  });
});
