/**
 * Gemini backend against a local server following the generateContent REST format:
 * POST /v1beta/models/{model}:generateContent, key in the `x-goog-api-key` header, request
 * `{contents:[{role, parts:[{text}|{inlineData:{mimeType,data}}]}], systemInstruction, generationConfig}`, answer
 * `{candidates:[{content:{parts:[...]}, finishReason}]}`.
 * Docs: https://ai.google.dev/api (generateContent, authentication) and
 * https://ai.google.dev/api/generate-content ; image output: https://ai.google.dev/gemini-api/docs/image-generation
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createGeminiBackend } from '../../src/backends/gemini/index.js';
import { withUsage } from '../../src/core/usage.js';
import { ModelOutputError, UserError } from '../../src/core/errors.js';
import { FAKE_KEY, isPng, json, jsonBody, startServer, tinyPng, type TestServer } from './helpers.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const answer = (parts: unknown[]) => ({ candidates: [{ content: { role: 'model', parts }, finishReason: 'STOP', index: 0 }] });
const img = async () => ({ png: new Uint8Array(await tinyPng()) });

async function backend(handler: Parameters<typeof startServer>[0], extra: Record<string, unknown> = {}) {
  process.env.RF_TEST_GEMINI_KEY = FAKE_KEY;
  server = await startServer(handler);
  return createGeminiBackend({ baseUrl: server.url, apiKeyEnv: 'RF_TEST_GEMINI_KEY', model: 'gem-vlm', imageModel: 'gem-img', retryBaseMs: 10, ...extra });
}

describe('gemini', () => {
  it('rubric verifier asks for JSON with a schema and scores position prompts with the position rubric', async () => {
    const scores = { relation_exact: { reason: 'ok', score: 3 }, both_present: { reason: 'ok', score: 10 }, layout_readable: { reason: 'ok', score: 8 }, overall_score: { reason: 'ok', score: 4 } };
    const b = await backend((_req, res) => json(res, 200, answer([{ text: JSON.stringify(scores) }])));
    const ev = await b.verifier.verify({ image: await img(), prompt: 'a cat left of a dog', meta: { tag: 'position' } });
    expect(ev.score).toBeCloseTo(0.4);
    const req = server!.requests[0]!;
    expect(req.path).toBe('/v1beta/models/gem-vlm:generateContent');
    expect(req.headers['x-goog-api-key']).toBe(FAKE_KEY);
    const body = jsonBody(req);
    expect(body.generationConfig.responseMimeType).toBe('application/json');
    expect(Object.keys(body.generationConfig.responseJsonSchema.properties)).toContain('relation_exact');
    expect(body.contents[0].parts[0].inlineData.mimeType).toBe('image/png');
    expect(body.systemInstruction).toBeDefined();
  });

  it('reports the usage the answer carries (usageMetadata) into the call it runs in, thinking tokens as output', async () => {
    const scores = { relation_exact: { reason: 'ok', score: 3 }, both_present: { reason: 'ok', score: 10 }, layout_readable: { reason: 'ok', score: 8 }, overall_score: { reason: 'ok', score: 4 } };
    const b = await backend((_req, res) =>
      json(res, 200, { ...answer([{ text: JSON.stringify(scores) }]), usageMetadata: { promptTokenCount: 1290, candidatesTokenCount: 41, thoughtsTokenCount: 210, totalTokenCount: 1541 } }),
    );
    const image = await img();
    const { usage, result, error } = await withUsage(() => b.verifier.verify({ image, prompt: 'a cat left of a dog', meta: { tag: 'position' } }));
    expect(error).toBeUndefined();
    expect(result).toBeDefined();
    expect(usage).toEqual({ inputTokens: 1290, outputTokens: 251 });
  });

  it('reflector and refiner read JSON answers', async () => {
    const b = await backend((req, res) => {
      const text = JSON.stringify(jsonBody(req).generationConfig.responseJsonSchema.properties.instructions ? { instructions: ['Move the cat to the left of the dog.'] } : { prompt: 'a cat on the left, a dog on the right' });
      json(res, 200, answer([{ text }]));
    });
    const r = await b.reflector.reflect({ image: await img(), prompt: 'a cat left of a dog', currentPrompt: 'a cat left of a dog' });
    expect(r.items).toEqual(['Move the cat to the left of the dog.']);
    expect(await b.refiner.refine({ prompt: 'a cat left of a dog', currentPrompt: 'a cat left of a dog', image: await img(), reflection: r })).toBe('a cat on the left, a dog on the right');
  });

  it('malformed answer: one repair request (with the model turn), then ModelOutputError', async () => {
    const b = await backend((_req, res) => json(res, 200, answer([{ text: '{"instructions": "not a list"}' }])));
    await expect(b.reflector.reflect({ image: await img(), prompt: 'a cat', currentPrompt: 'a cat' })).rejects.toBeInstanceOf(ModelOutputError);
    expect(server!.requests).toHaveLength(2);
    const contents = jsonBody(server!.requests[1]!).contents;
    expect(contents.map((c: any) => c.role)).toEqual(['user', 'model', 'user']);
  });

  it('generates and corrects images from inlineData', async () => {
    const png = (await tinyPng()).toString('base64');
    const b = await backend((_req, res) => json(res, 200, answer([{ text: 'here' }, { inlineData: { mimeType: 'image/png', data: png } }])));
    expect(isPng((await b.generator.generate({ prompt: 'a cat', seed: 5 })).png)).toBe(true);
    const g = jsonBody(server!.requests[0]!);
    expect(server!.requests[0]!.path).toBe('/v1beta/models/gem-img:generateContent');
    expect(g.generationConfig).toMatchObject({ seed: 5, responseModalities: ['TEXT', 'IMAGE'] });
    await b.corrector.correct({ image: await img(), prompt: 'a cat', reflection: { text: 'Add a hat.', items: ['Add a hat.'] }, seed: 1 });
    const parts = jsonBody(server!.requests[1]!).contents[0].parts;
    expect(parts[0].inlineData.mimeType).toBe('image/png');
    expect(parts[1].text).toBe('a cat [Reflexion]: Add a hat.');
  });

  it('refuses yesno and inline keys', () => {
    process.env.RF_TEST_GEMINI_KEY = FAKE_KEY;
    expect(() => createGeminiBackend({ apiKeyEnv: 'RF_TEST_GEMINI_KEY', mode: 'yesno' })).toThrow(UserError);
    expect(() => createGeminiBackend({ apiKey: 'x' })).toThrow(UserError);
  });
});
