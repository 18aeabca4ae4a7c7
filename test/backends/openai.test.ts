/**
 * OpenAI-compatible backend against a local server that speaks the documented wire format:
 * - Chat completions, incl. `logprobs`/`top_logprobs` and `response_format: json_schema`:
 *   https://platform.openai.com/docs/api-reference/chat/create
 *   (logprobs on OpenAI-compatible servers: https://developer.furiosa.ai/latest/en/furiosa_llm/examples/online_chat_completion_logprobs.html)
 * - Images generate and edit (multipart, `b64_json` or `url`):
 *   https://platform.openai.com/docs/api-reference/images/create and
 *   https://platform.openai.com/docs/api-reference/images/create-edit
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createOpenAIBackend } from '../../src/backends/openai/index.js';
import { ModelOutputError, UserError } from '../../src/core/errors.js';
import { FAKE_KEY, formData, isPng, json, jsonBody, startServer, tinyJpeg, tinyPng, type Handler, type TestServer } from './helpers.js';

let server: TestServer | undefined;
beforeEach(() => {
  process.env.RF_TEST_OPENAI_KEY = FAKE_KEY;
});
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function completion(content: string, logprobs?: unknown): unknown {
  return {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: 'm',
    choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content }, logprobs: logprobs ?? null }],
  };
}

const RUBRIC_COUNTING = JSON.stringify({
  count_exact: { reason: 'three apples', score: 9 },
  instances_distinct: { reason: 'clear', score: 7 },
  instances_alike: { reason: 'apples', score: 10 },
  overall_score: { reason: 'good', score: 8 },
});

async function backend(handler: Handler, extra: Record<string, unknown> = {}) {
  server = await startServer(handler);
  return createOpenAIBackend({
    baseURL: `${server.url}/v1`,
    apiKeyEnv: 'RF_TEST_OPENAI_KEY',
    model: 'qwen-vl',
    imageModel: 'img',
    retryBaseMs: 10,
    ...extra,
  });
}

const image = async () => ({ png: new Uint8Array(await tinyPng()) });

describe('openai chat: rubric verifier', () => {
  it('sends the image as a PNG data URL with a json_schema for the GenEval tag and scores overall/10', async () => {
    const b = await backend((_req, res) => json(res, 200, completion(RUBRIC_COUNTING)));
    const ev = await b.verifier.verify({ image: await image(), prompt: 'three apples', meta: { tag: 'counting' } });
    expect(ev.score).toBeCloseTo(0.8);
    expect(ev.aspects).toEqual({ count_exact: 9, instances_distinct: 7, instances_alike: 10, overall_score: 8 });
    const req = server!.requests[0]!;
    expect(req.path).toBe('/v1/chat/completions');
    expect(req.headers.authorization).toBe(`Bearer ${FAKE_KEY}`);
    const body = jsonBody(req);
    expect(body.model).toBe('qwen-vl');
    expect(body.response_format.type).toBe('json_schema');
    expect(Object.keys(body.response_format.json_schema.schema.properties)).toContain('count_exact');
    const user = body.messages.find((m: any) => m.role === 'user');
    expect(user.content[0].image_url.url).toMatch(/^data:image\/png;base64,iVBOR/);
    expect(user.content[1].text).toContain('three apples');
  });

  it('uses the general rubric without a GenEval tag, metric picks the aspect, structuredOutput:false extracts JSON from text', async () => {
    const answer = 'Here you go:\n```json\n' + JSON.stringify({ prompt_alignment: 6, visual_quality: 9, composition: 7, overall_score: 7 }) + '\n```';
    const b = await backend((_req, res) => json(res, 200, completion(answer)), { structuredOutput: false, metric: 'prompt_alignment' });
    const ev = await b.verifier.verify({ image: await image(), prompt: 'a cat' });
    expect(ev.score).toBeCloseTo(0.6);
    expect(jsonBody(server!.requests[0]!).response_format).toBeUndefined();
  });

  it('malformed answer: one repair request, then ModelOutputError', async () => {
    const b = await backend((_req, res) => json(res, 200, completion('I think it is fine.')));
    await expect(b.verifier.verify({ image: await image(), prompt: 'a cat' })).rejects.toBeInstanceOf(ModelOutputError);
    expect(server!.requests).toHaveLength(2);
    const repair = jsonBody(server!.requests[1]!).messages;
    expect(repair.at(-2)).toEqual({ role: 'assistant', content: 'I think it is fine.' });
    expect(repair.at(-1).content).toMatch(/could not be used/);
  });

  it('a repaired answer is accepted', async () => {
    const b = await backend((_req, res, n) => json(res, 200, completion(n === 0 ? '{"overall_score": 11}' : RUBRIC_COUNTING)));
    const ev = await b.verifier.verify({ image: await image(), prompt: 'three apples', meta: { tag: 'counting' } });
    expect(ev.score).toBeCloseTo(0.8);
    expect(server!.requests).toHaveLength(2);
  });
});

describe('openai chat: yes/no verifier', () => {
  const answer = (token: string, top: Array<[string, number]>) =>
    completion(token, { content: [{ token, logprob: top.find(([t]) => t === token)?.[1] ?? -5, bytes: null, top_logprobs: top.map(([t, p]) => ({ token: t, logprob: Math.log(p), bytes: null })) }] });

  it('asks for one token with top logprobs and ranks yes before no', async () => {
    const replies = [
      answer('yes', [['yes', 0.9], ['no', 0.1]]),
      answer('Yes', [['Yes', 0.6], ['No', 0.4]]),
      answer('no', [['no', 0.55], ['yes', 0.45]]),
      answer('no', [['no', 0.95], ['yes', 0.05]]),
    ];
    const b = await backend((_req, res, n) => json(res, 200, replies[n]), { mode: 'yesno' });
    const evs = [];
    for (let i = 0; i < 4; i++) evs.push(await b.verifier.verify({ image: await image(), prompt: 'a cat' }));
    expect(evs.map((e) => e.label)).toEqual(['yes', 'yes', 'no', 'no']);
    expect(evs[0]!.score).toBeCloseTo(1.9);
    expect(evs[3]!.score).toBeCloseTo(0.05);
    const scores = evs.map((e) => e.score);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores); // yes by high P(yes), then no by low P(no)
    const body = jsonBody(server!.requests[0]!);
    expect(body).toMatchObject({ max_tokens: 1, logprobs: true, top_logprobs: 5 });
  });

  it('an answer that is neither yes nor no: one repair request, then ModelOutputError', async () => {
    const b = await backend((_req, res) => json(res, 200, answer('maybe', [['maybe', 0.7], ['perhaps', 0.3]])), { mode: 'yesno' });
    await expect(b.verifier.verify({ image: await image(), prompt: 'a cat' })).rejects.toBeInstanceOf(ModelOutputError);
    expect(server!.requests).toHaveLength(2);
  });
});

describe('openai chat: reflector and refiner', () => {
  it('parses a reflection into items, skipping headings and bullets', async () => {
    const text = '1. Prompt Following:\n- Add one more apple to the right of the bowl.\n- Recolor the cup on the left to blue.';
    const b = await backend((_req, res) => json(res, 200, completion(text)));
    const r = await b.reflector.reflect({ image: await image(), prompt: 'three apples and a blue cup', currentPrompt: 'three apples and a blue cup', evaluation: { score: 0.4 } });
    expect(r.items).toEqual(['Add one more apple to the right of the bowl.', 'Recolor the cup on the left to blue.']);
    const body = jsonBody(server!.requests[0]!);
    expect(body.messages[0].content).toMatch(/Add, Remove, Replace, Move, Recolor/);
  });

  it("template 'reflection-generator' sends the model's single-turn format", async () => {
    const b = await backend((_req, res) => json(res, 200, completion('1. Prompt Following:  \n- Remove the dog on the left.')), { template: 'reflection-generator' });
    const r = await b.reflector.reflect({ image: await image(), prompt: 'a cat', currentPrompt: 'a cat' });
    expect(r.items).toEqual(['Remove the dog on the left.']);
    const msgs = jsonBody(server!.requests[0]!).messages;
    expect(msgs).toHaveLength(2);
    expect(msgs[0]).toEqual({ role: 'system', content: 'You are a helpful assistant.' });
    expect(msgs[1].content[0].type).toBe('image_url');
    expect(msgs[1].content[1].text).toContain('The prompt is: "a cat"');
  });

  it('refines a prompt from the reflection', async () => {
    const b = await backend((_req, res) => json(res, 200, completion('Prompt: "exactly three red apples in a bowl"')));
    const p = await b.refiner.refine({ prompt: 'three red apples', currentPrompt: 'three red apples', image: await image(), reflection: { text: 'Add one apple', items: ['Add one apple'] } });
    expect(p).toBe('exactly three red apples in a bowl');
    expect(jsonBody(server!.requests[0]!).messages[1].content[1].text).toContain('Add one apple');
  });

  it('an empty reflection answer: one repair request, then ModelOutputError', async () => {
    const b = await backend((_req, res) => json(res, 200, completion('  ')));
    await expect(b.reflector.reflect({ image: await image(), prompt: 'a cat', currentPrompt: 'a cat' })).rejects.toBeInstanceOf(ModelOutputError);
    expect(server!.requests).toHaveLength(2);
  });
});

describe('openai images', () => {
  it('generates from b64_json', async () => {
    const b64 = (await tinyPng()).toString('base64');
    const b = await backend((_req, res) => json(res, 200, { created: 1, data: [{ b64_json: b64 }] }), { imageSize: '1024x1024' });
    const img = await b.generator.generate({ prompt: 'a cat', seed: 3 });
    expect(isPng(img.png)).toBe(true);
    const req = server!.requests[0]!;
    expect(req.path).toBe('/v1/images/generations');
    expect(jsonBody(req)).toMatchObject({ model: 'img', prompt: 'a cat', n: 1, size: '1024x1024' });
  });

  it('edits with the image and `prompt [Reflexion]: reflection`; a url answer is downloaded and converted to PNG', async () => {
    const jpg = await tinyJpeg();
    const b = await backend((req, res) => {
      if (req.path === '/v1/images/edits') return json(res, 200, { created: 1, data: [{ url: `${server!.url}/files/out.jpg` }] });
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.end(jpg);
    });
    const img = await b.corrector.correct({ image: await image(), prompt: 'a red cat', reflection: { text: 'Recolor the cat red.', items: ['Recolor the cat red.'] }, seed: 1 });
    expect(isPng(img.png)).toBe(true);
    const form = await formData(server!.requests[0]!);
    expect(form.get('prompt')).toBe('a red cat [Reflexion]: Recolor the cat red.');
    expect(form.get('model')).toBe('img');
    const file = form.get('image') as File;
    expect(isPng(new Uint8Array(await file.arrayBuffer()))).toBe(true);
    expect(server!.requests[1]!.path).toBe('/files/out.jpg');
  });
});

describe('openai: keys', () => {
  it('refuses a key in the config', () => {
    expect(() => createOpenAIBackend({ apiKey: FAKE_KEY })).toThrow(UserError);
  });

  it('needs the key variable for api.openai.com', () => {
    delete process.env.RF_TEST_OPENAI_KEY;
    expect(() => createOpenAIBackend({ apiKeyEnv: 'RF_TEST_OPENAI_KEY' })).toThrow(/RF_TEST_OPENAI_KEY/);
  });

  it('scrubs a key the server echoes in an error', async () => {
    const b = await backend((_req, res) => json(res, 401, { error: { message: `Incorrect API key provided: ${FAKE_KEY}`, type: 'invalid_request_error' } }));
    const err = await b.verifier.verify({ image: await image(), prompt: 'a cat' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/401/);
    expect((err as Error).message).not.toContain(FAKE_KEY);
    expect((err as Error).message).not.toContain('FAKEKEY');
  });
});
