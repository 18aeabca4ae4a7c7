/**
 * `serve` over the five procedural roles, driven with the real `openai` SDK (and our openai backend, which is how
 * a search uses it). Wire format: https://platform.openai.com/docs/api-reference (models, images/create,
 * images/create-edit, chat/create incl. logprobs and response_format json_schema; error bodies as in
 * https://platform.openai.com/docs/guides/error-codes).
 */
import OpenAI, { toFile } from 'openai';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpenAIBackend, toMessages } from '../../src/backends/openai/index.js';
import { createProceduralBackend } from '../../src/backends/procedural/index.js';
import { correctorInstruction } from '../../src/core/roles.js';
import type { Image } from '../../src/core/types.js';
import { rubricFor, rubricJsonSchema } from '../../src/roles/rubric.js';
import { rubricUserText as rubricText, yesNoQuestion } from '../../src/roles/templates.js';
import type { RunningServer } from '../../src/server/server.js';
import { bytes, isApiError, postJson, raw, sdk, serve } from './helpers.js';

const PROMPT = 'a photo of a red circle left of a blue square';
const direct = createProceduralBackend();
let server: RunningServer;
let client: OpenAI;
/** images of PROMPT: a correct one and a defective one (their reflections differ) */
let good: Image;
let bad: Image;
let badItems: string[];

beforeAll(async () => {
  server = await serve();
  client = sdk(server);
  for (let seed = 0; seed < 64 && (!good || !bad); seed++) {
    const img = await direct.generator.generate({ prompt: PROMPT, seed });
    const ev = await direct.verifier.verify({ image: img, prompt: PROMPT });
    if (ev.label === 'yes') good ??= img;
    else if (!bad) {
      const r = await direct.reflector.reflect({ image: img, prompt: PROMPT, currentPrompt: PROMPT });
      if (r.items.length) {
        bad = img;
        badItems = r.items;
      }
    }
  }
  expect(good && bad).toBeTruthy();
});
afterAll(() => server.close());

const backend = (extra: Record<string, unknown>) => createOpenAIBackend({ baseURL: server.url, retryBaseMs: 1, maxRetries: 0, ...extra });

describe('models', () => {
  it('lists the five role models; one can be retrieved; an unknown one is 404 model_not_found', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual([
      'reflectionflow-generator',
      'reflectionflow-verifier',
      'reflectionflow-reflector',
      'reflectionflow-refiner',
      'reflectionflow-corrector',
    ]);
    expect((await client.models.retrieve('reflectionflow-verifier')).owned_by).toBe('reflectionflow:oracle');
    const r = await raw(server, '/models/gpt-4o');
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('model_not_found');
  });

  it('a backend with fewer roles lists only those', async () => {
    const s = await serve({ generator: direct.generator, verifier: direct.verifier });
    try {
      expect((await sdk(s).models.list()).data.map((m) => m.id)).toEqual(['reflectionflow-generator', 'reflectionflow-verifier']);
      const r = await postJson(s, '/chat/completions', { model: 'reflectionflow-reflector', messages: [{ role: 'user', content: 'hi' }] });
      expect(r.status).toBe(404);
      expect(r.body.error.code).toBe('model_not_found');
    } finally {
      await s.close();
    }
  });
});

describe('images/generations', () => {
  it('with a seed: the same PNG bytes as the generator called directly; n = 3 uses seed, seed+1, seed+2', async () => {
    const res = await client.images.generate({ model: 'reflectionflow-generator', prompt: PROMPT, n: 3, response_format: 'b64_json', seed: 7 } as any);
    expect(res.data).toHaveLength(3);
    for (const [i, d] of res.data!.entries()) {
      const want = await direct.generator.generate({ prompt: PROMPT, seed: 7 + i });
      expect(Buffer.from(d.b64_json!, 'base64').equals(bytes(want.png))).toBe(true);
      expect((d as any).seed).toBe(7 + i);
    }
    expect(Buffer.from(res.data![0]!.b64_json!, 'base64').equals(Buffer.from(res.data![1]!.b64_json!, 'base64'))).toBe(false);
  });

  it('without a seed: a random one, reported, that reproduces the image; size NxN reaches the generator', async () => {
    const res = await client.images.generate({ model: 'reflectionflow-generator', prompt: PROMPT, size: '64x64' } as any);
    const d = res.data![0]! as any;
    expect(Number.isInteger(d.seed)).toBe(true);
    const want = await direct.generator.generate({ prompt: PROMPT, seed: d.seed, size: 64 });
    expect(Buffer.from(d.b64_json, 'base64').equals(bytes(want.png))).toBe(true);
    expect((await sharp(Buffer.from(d.b64_json, 'base64')).metadata()).width).toBe(64);
  });

  it('our openai backend (sendSeed) gets the direct image', async () => {
    const g = backend({ imageModel: 'reflectionflow-generator', sendSeed: true }).generator;
    const img = await g.generate({ prompt: PROMPT, seed: 11 });
    expect(bytes(img.png).equals(bytes((await direct.generator.generate({ prompt: PROMPT, seed: 11 })).png))).toBe(true);
  });
});

describe('images/edits', () => {
  it('SDK multipart: prompt [Reflexion]: reflection (two lines) → the corrector, same bytes as a direct call', async () => {
    const reflection = { text: [...badItems, 'Remove the green star.'].join('\n'), items: [...badItems, 'Remove the green star.'] };
    const res = await client.images.edit({
      model: 'reflectionflow-corrector',
      image: await toFile(bytes(bad.png), 'image.png', { type: 'image/png' }),
      prompt: correctorInstruction(PROMPT, reflection),
      n: 2,
      response_format: 'b64_json',
      seed: 5,
    } as any);
    expect(res.data).toHaveLength(2);
    for (const [i, d] of res.data!.entries()) {
      const want = await direct.corrector.correct({ image: bad, prompt: PROMPT, reflection, seed: 5 + i });
      expect(Buffer.from(d.b64_json!, 'base64').equals(bytes(want.png))).toBe(true);
    }
  });

  it('our openai backend corrector (sendSeed) gets the direct image', async () => {
    const c = backend({ imageModel: 'reflectionflow-corrector', sendSeed: true }).corrector;
    const reflection = { text: badItems.join('\n'), items: badItems };
    const got = await c.correct({ image: bad, prompt: PROMPT, reflection, seed: 3 });
    const want = await direct.corrector.correct({ image: bad, prompt: PROMPT, reflection, seed: 3 });
    expect(bytes(got.png).equals(bytes(want.png))).toBe(true);
  });

  it('a JPEG upload is accepted (converted to PNG); a prompt without [Reflexion] and a mask are 400', async () => {
    const jpeg = await sharp(bytes(bad.png)).jpeg().toBuffer();
    const res = await client.images.edit({
      model: 'reflectionflow-corrector',
      image: await toFile(jpeg, 'image.jpg', { type: 'image/jpeg' }),
      prompt: `${PROMPT} [Reflexion]: ${badItems[0]}`,
      seed: 1,
    } as any);
    expect(Buffer.from(res.data![0]!.b64_json!, 'base64').subarray(1, 4).toString()).toBe('PNG');
    const plain = await client.images
      .edit({ model: 'reflectionflow-corrector', image: await toFile(bytes(bad.png), 'a.png', { type: 'image/png' }), prompt: 'make it blue' })
      .catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(OpenAI.BadRequestError);
    expect((plain as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ param: 'prompt', type: 'invalid_request_error' });
    const masked = await client.images
      .edit({
        model: 'reflectionflow-corrector',
        image: await toFile(bytes(bad.png), 'a.png', { type: 'image/png' }),
        mask: await toFile(bytes(bad.png), 'm.png', { type: 'image/png' }),
        prompt: `${PROMPT} [Reflexion]: x`,
      })
      .catch((e: unknown) => e);
    expect(masked).toBeInstanceOf(OpenAI.BadRequestError);
  });
});

describe('chat/completions: verifier', () => {
  const yesNoBody = (image: Image, extra: Record<string, unknown> = {}) => ({
    model: 'reflectionflow-verifier',
    messages: toMessages({ text: yesNoQuestion(PROMPT), image }),
    max_tokens: 1,
    logprobs: true,
    top_logprobs: 5,
    temperature: 0,
    ...extra,
  });

  it('yes/no: one token, the label, with top_logprobs for yes and no from P(yes)', async () => {
    for (const image of [good, bad]) {
      const ev = await direct.verifier.verify({ image, prompt: PROMPT });
      const res = await client.chat.completions.create(yesNoBody(image) as any);
      const choice = res.choices[0]!;
      expect(choice.message.content).toBe(ev.label);
      const first = choice.logprobs!.content![0]!;
      expect(first.token).toBe(ev.label);
      const top = Object.fromEntries(first.top_logprobs.map((t) => [t.token, Math.exp(t.logprob)]));
      expect(Object.keys(top).sort()).toEqual(['no', 'yes']);
      expect(top.yes).toBeCloseTo(ev.score, 10);
      expect(top.no).toBeCloseTo(1 - ev.score, 10);
      expect(first.logprob).toBe(first.top_logprobs.find((t) => t.token === ev.label)!.logprob);
    }
  });

  it('yes/no through our openai backend ranks like the direct verifier (correct image first)', async () => {
    const v = backend({ model: 'reflectionflow-verifier', mode: 'yesno' }).verifier;
    const g = await v.verify({ image: good, prompt: PROMPT });
    const b = await v.verify({ image: bad, prompt: PROMPT });
    expect(g.label).toBe('yes');
    expect(b.label).toBe('no');
    expect(b.score).toBeCloseTo((await direct.verifier.verify({ image: bad, prompt: PROMPT })).score, 10);
    expect(g.score).toBeGreaterThan(b.score);
  });

  it('without logprobs: just the word; top_logprobs without logprobs is 400', async () => {
    const res = await client.chat.completions.create(yesNoBody(good, { logprobs: undefined, top_logprobs: undefined }) as any);
    expect(res.choices[0]!.message.content).toBe('yes');
    expect(res.choices[0]!.logprobs).toBeNull();
    const r = await postJson(server, '/chat/completions', yesNoBody(good, { logprobs: false, top_logprobs: 2 }));
    expect(r.status).toBe(400);
    expect(r.body.error.param).toBe('top_logprobs');
  });

  it('rubric (json_schema): every aspect the schema asks for; overall_score = 10·P(yes); via our backend the score is P(yes)', async () => {
    const rubric = rubricFor('position');
    const res = await client.chat.completions.create({
      model: 'reflectionflow-verifier',
      messages: toMessages({ system: 'judge', text: rubricText(PROMPT, rubric), image: bad }),
      response_format: { type: 'json_schema', json_schema: { name: 'rubric_position', schema: rubricJsonSchema(rubric), strict: true } },
    });
    const answer = JSON.parse(res.choices[0]!.message.content!);
    const p = (await direct.verifier.verify({ image: bad, prompt: PROMPT })).score;
    expect(Object.keys(answer)).toEqual(Object.keys(rubric.aspects));
    expect(answer.overall_score.score).toBeCloseTo(10 * p, 10);
    expect(answer.relation_exact.reason).toMatch(/not judged apart/);

    for (const structuredOutput of [true, false]) {
      const v = backend({ model: 'reflectionflow-verifier', mode: 'rubric', structuredOutput }).verifier;
      const ev = await v.verify({ image: good, prompt: PROMPT, meta: { tag: 'counting' } });
      expect(ev.score).toBeCloseTo(1, 10);
      expect(Object.keys(ev.aspects!)).toEqual(Object.keys(rubricFor('counting').aspects));
      const evBad = await v.verify({ image: bad, prompt: PROMPT });
      expect(evBad.score).toBeCloseTo(p, 10);
    }
  });

  it('a request that is not ours is 400 unrecognized_request', async () => {
    const r = await postJson(server, '/chat/completions', {
      model: 'reflectionflow-verifier',
      messages: toMessages({ text: 'What is in this picture?', image: good }),
    });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('unrecognized_request');
    const noImage = await postJson(server, '/chat/completions', { model: 'reflectionflow-verifier', messages: [{ role: 'user', content: yesNoQuestion(PROMPT) }] });
    expect(noImage.status).toBe(400);
    expect(noImage.body.error.param).toBe('messages');
    const httpImage = await postJson(server, '/chat/completions', {
      model: 'reflectionflow-verifier',
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }, { type: 'text', text: yesNoQuestion(PROMPT) }] }],
    });
    expect(httpImage.status).toBe(400);
    expect(httpImage.body.error.code).toBe('invalid_image_url');
  });
});

describe('chat/completions: reflector and refiner', () => {
  it('reflector through our backend: the direct reflection; None for a correct image; JSON output; Reflection-Generator format', async () => {
    const evaluation = await direct.verifier.verify({ image: bad, prompt: PROMPT });
    const want = await direct.reflector.reflect({ image: bad, prompt: PROMPT, currentPrompt: PROMPT, evaluation });
    for (const extra of [{}, { output: 'json' }, { template: 'reflection-generator' }]) {
      const r = backend({ model: 'reflectionflow-reflector', ...extra }).reflector;
      const got = await r.reflect({ image: bad, prompt: PROMPT, currentPrompt: 'another prompt', evaluation, previousReflection: { text: 'Add x', items: ['Add x'] } });
      expect(got.items).toEqual(want.items);
      expect(got.text).toBe(want.items.join('\n'));
    }
    const none = await backend({ model: 'reflectionflow-reflector' }).reflector.reflect({ image: good, prompt: PROMPT, currentPrompt: PROMPT });
    expect(none.items).toEqual([]);
    const res = await client.chat.completions.create({
      model: 'reflectionflow-reflector',
      messages: toMessages({ text: `Generate reflections to improve the input image according to the prompt. The prompt is: "${PROMPT}"`, image: bad }),
    });
    expect(res.choices[0]!.message.content).toBe(want.items.map((i) => `- ${i}`).join('\n'));
  });

  it('refiner through our backend: the direct refined prompt (text and JSON output)', async () => {
    const want = await direct.refiner.refine({ prompt: PROMPT, currentPrompt: PROMPT, image: bad });
    expect(want).not.toBe(PROMPT);
    for (const output of ['text', 'json']) {
      const r = backend({ model: 'reflectionflow-refiner', output }).refiner;
      const got = await r.refine({ prompt: PROMPT, currentPrompt: 'x', image: bad, evaluation: { score: 0.3, label: 'no' }, reflection: { text: badItems.join('\n'), items: badItems } });
      expect(got).toBe(want);
    }
  });

  it('a verifier request sent to the refiner model is 400, not a wrong answer', async () => {
    const r = await postJson(server, '/chat/completions', { model: 'reflectionflow-refiner', messages: toMessages({ text: yesNoQuestion(PROMPT), image: bad }) });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('unrecognized_request');
  });
});

describe('bad requests get OpenAI error bodies', () => {
  const cases: Array<[string, () => Promise<{ status: number; body: any }>, number, Partial<{ code: string; param: string }>]> = [
    ['missing prompt', () => postJson(server, '/images/generations', { model: 'reflectionflow-generator' }), 400, { code: 'missing_required_parameter', param: 'prompt' }],
    ['empty prompt', () => postJson(server, '/images/generations', { prompt: '  ' }), 400, { param: 'prompt' }],
    ['unknown model', () => postJson(server, '/images/generations', { model: 'dall-e-3', prompt: PROMPT }), 404, { code: 'model_not_found', param: 'model' }],
    ['a served model on the wrong endpoint', () => postJson(server, '/images/generations', { model: 'reflectionflow-verifier', prompt: PROMPT }), 400, { code: 'model_not_supported' }],
    ['response_format url', () => postJson(server, '/images/generations', { prompt: PROMPT, response_format: 'url' }), 400, { param: 'response_format' }],
    ['n = 11', () => postJson(server, '/images/generations', { prompt: PROMPT, n: 11 }), 400, { param: 'n' }],
    ['non-square size', () => postJson(server, '/images/generations', { prompt: PROMPT, size: '64x32' }), 400, { param: 'size' }],
    ['a size the backend cannot make', () => postJson(server, '/images/generations', { prompt: PROMPT, size: '9999x9999' }), 400, { param: 'size' }],
    ['n × size² over the pixel budget (4096² by default)', () => postJson(server, '/images/generations', { prompt: PROMPT, n: 2, size: '4096x4096' }), 400, { code: 'pixel_budget_exceeded', param: 'size' }],
    ['stream: true (chat)', () => postJson(server, '/chat/completions', { model: 'reflectionflow-verifier', stream: true, messages: [{ role: 'user', content: 'x' }] }), 400, { param: 'stream' }],
    ['stream: true (images)', () => postJson(server, '/images/generations', { prompt: PROMPT, stream: true }), 400, { param: 'stream' }],
    ['chat without messages', () => postJson(server, '/chat/completions', { model: 'reflectionflow-verifier' }), 400, { code: 'missing_required_parameter', param: 'messages' }],
    ['malformed JSON', () => raw(server, '/images/generations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt": ' }), 400, { code: 'invalid_json' }],
    ['wrong content-type', () => raw(server, '/images/generations', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ prompt: PROMPT }) }), 400, { code: 'unsupported_content_type' }],
    ['JSON sent to edits', () => postJson(server, '/images/edits', { prompt: PROMPT }), 400, { code: 'unsupported_content_type' }],
    ['unknown path', () => raw(server, '/embeddings', { method: 'POST' }), 404, { code: 'unknown_url' }],
    ['wrong method', () => raw(server, '/chat/completions'), 405, { code: 'method_not_allowed' }],
    ['a URL that does not decode', () => raw(server, '/models/%E0%A4%A'), 400, { code: 'invalid_url' }],
  ];
  for (const [name, call, status, fields] of cases) {
    it(name, async () => {
      const r = await call();
      expect(r.status).toBe(status);
      expect(isApiError(r.body)).toBe(true);
      expect(r.body.error.type).toBe('invalid_request_error');
      expect(r.body.error).toMatchObject(fields);
    });
  }

  it('405 says which methods the path takes', async () => {
    const r = await raw(server, '/models', { method: 'DELETE' });
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('GET');
  });

  it('the pixel budget is n × width × height, for generations and edits alike', async () => {
    let calls = 0;
    const generator = { ...direct.generator, generate: (...a: Parameters<typeof direct.generator.generate>) => (calls++, direct.generator.generate(...a)) };
    const s = await serve({ ...direct, generator }, { maxPixelsPerRequest: 2 * 64 * 64 });
    try {
      const c = sdk(s);
      expect((await c.images.generate({ prompt: PROMPT, n: 2, size: '64x64' } as any)).data).toHaveLength(2);
      const over = await c.images.generate({ prompt: PROMPT, n: 3, size: '64x64' } as any).catch((e: unknown) => e);
      expect(over).toBeInstanceOf(OpenAI.BadRequestError);
      expect((over as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('pixel_budget_exceeded');
      expect(calls).toBe(2);
      const edit = await c.images
        .edit({ image: await toFile(bytes(bad.png), 'a.png', { type: 'image/png' }), prompt: `${PROMPT} [Reflexion]: x`, size: '256x256' } as any)
        .catch((e: unknown) => e);
      expect((edit as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('pixel_budget_exceeded');
    } finally {
      await s.close();
    }
  });

  it('the SDK sees them as its own error classes', async () => {
    const e = await client.images.generate({ model: 'nope', prompt: PROMPT }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.NotFoundError);
    expect((e as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });

  it('a body over the limit is 413; an edit without the image is 400; a malformed multipart body is 400', async () => {
    const s = await serve(createProceduralBackend(), { maxBodyBytes: 1000 });
    try {
      const r = await postJson(s, '/images/generations', { prompt: 'x'.repeat(2000) });
      expect(r.status).toBe(413);
      expect(r.body.error.code).toBe('request_too_large');
    } finally {
      await s.close();
    }
    const form = new FormData();
    form.set('prompt', `${PROMPT} [Reflexion]: x`);
    const noImage = await raw(server, '/images/edits', { method: 'POST', body: form });
    expect(noImage.status).toBe(400);
    expect(noImage.body.error).toMatchObject({ code: 'missing_required_parameter', param: 'image' });
    const broken = await raw(server, '/images/edits', {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=xyz' },
      body: '--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nno end',
    });
    expect(broken.status).toBe(400);
    expect(broken.body.error.code).toBe('invalid_multipart');
    const notImage = new FormData();
    notImage.set('prompt', `${PROMPT} [Reflexion]: x`);
    notImage.set('image', new Blob([Buffer.from('not an image')], { type: 'image/png' }), 'a.png');
    const r2 = await raw(server, '/images/edits', { method: 'POST', body: notImage });
    expect(r2.status).toBe(400);
    expect(r2.body.error.code).toBe('invalid_image');
  });

  it('a prompt the roles cannot read is 400 (a UserError of the role)', async () => {
    const r = await postJson(server, '/images/generations', { prompt: 'a photo of a purple elephant' });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/cannot parse prompt/);
  });
});

describe('bearer key', () => {
  it('with apiKey: no or a wrong key is 401; the right key works', async () => {
    const s = await serve(createProceduralBackend(), { apiKey: 'sk-serve-secret' });
    try {
      const none = await raw(s, '/models');
      expect(none.status).toBe(401);
      expect(none.body.error.code).toBe('invalid_api_key');
      expect(JSON.stringify(none.body)).not.toContain('sk-serve-secret');
      await expect(sdk(s, 'wrong').models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
      expect((await sdk(s, 'sk-serve-secret').models.list()).data).toHaveLength(5);
    } finally {
      await s.close();
    }
  });
});

describe('calls', () => {
  it('a client that goes away aborts its call; calls respect the role concurrency', async () => {
    let active = 0;
    let most = 0;
    const aborted: number[] = [];
    const png = (await direct.generator.generate({ prompt: PROMPT, seed: 1 })).png;
    const generator = {
      name: 'slow',
      concurrency: 2,
      generate: (req: { seed: number }, opts?: { signal?: AbortSignal }) =>
        new Promise<Image>((resolve, reject) => {
          most = Math.max(most, ++active);
          const timer = setTimeout(() => {
            active--;
            resolve({ png });
          }, req.seed === 999 ? 10_000 : 50);
          opts?.signal?.addEventListener('abort', () => {
            clearTimeout(timer);
            active--;
            aborted.push(req.seed);
            reject(new Error('aborted'));
          });
        }),
    };
    const s = await serve({ generator, verifier: direct.verifier });
    try {
      const controller = new AbortController();
      const gone = fetch(`${s.url}/images/generations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'x', seed: 999 }),
        signal: controller.signal,
      }).catch(() => 'aborted');
      await new Promise((r) => setTimeout(r, 100));
      controller.abort();
      expect(await gone).toBe('aborted');
      await new Promise((r) => setTimeout(r, 100));
      expect(aborted).toEqual([999]);
      const res = await sdk(s).images.generate({ prompt: 'x', n: 6, seed: 1 } as any);
      expect(res.data).toHaveLength(6);
      expect(most).toBe(2);
    } finally {
      await s.close();
    }
  });
});
