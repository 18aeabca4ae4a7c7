/**
 * The reliability layer, per backend, against local servers speaking each service's wire format (doc pages cited
 * in openai.test.ts, fal.test.ts, gemini.test.ts, comfyui.test.ts): 429 + Retry-After then success, 500 then
 * success, a hanging server (the call fails within its timeout), cancellation; plus the pieces in isolation.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createComfyBackend } from '../../src/backends/comfyui/index.js';
import { createFalBackend } from '../../src/backends/fal/index.js';
import { createGeminiBackend } from '../../src/backends/gemini/index.js';
import { backoffDelay, parseRetryAfter, RateLimiter, Semaphore } from '../../src/backends/http/reliability.js';
import { scrubSecrets } from '../../src/backends/http/secrets.js';
import { createOpenAIBackend } from '../../src/backends/openai/index.js';
import { comfyHandler, FAKE_KEY, json, startServer, tinyPng, type Handler, type TestServer } from './helpers.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const rel = { retryBaseMs: 1, retryMaxMs: 5_000 };
const png = async () => ({ png: new Uint8Array(await tinyPng()) });

interface Case {
  name: string;
  ok: () => Handler;
  call: (url: string, extra: Record<string, unknown>) => Promise<unknown>;
}

const rubric = JSON.stringify({ prompt_alignment: 5, visual_quality: 5, composition: 5, overall_score: 5 });

const cases: Case[] = [
  {
    name: 'openai chat',
    ok: () => (_req, res) => json(res, 200, { id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: rubric } }] }),
    call: async (url, extra) => createOpenAIBackend({ baseURL: `${url}/v1`, ...rel, ...extra }).verifier.verify({ image: await png(), prompt: 'a cat' }),
  },
  {
    name: 'openai images',
    ok: () => async (_req, res) => json(res, 200, { created: 1, data: [{ b64_json: (await tinyPng()).toString('base64') }] }),
    call: (url, extra) => createOpenAIBackend({ baseURL: `${url}/v1`, ...rel, ...extra }).generator.generate({ prompt: 'a cat', seed: 1 }),
  },
  {
    name: 'fal',
    ok: () => async (_req, res) => json(res, 200, { images: [{ url: `data:image/png;base64,${(await tinyPng()).toString('base64')}` }] }),
    call: (url, extra) => createFalBackend({ baseUrl: url, ...rel, ...extra }).generator.generate({ prompt: 'a cat', seed: 1 }),
  },
  {
    name: 'gemini',
    ok: () => (_req, res) => json(res, 200, { candidates: [{ content: { role: 'model', parts: [{ text: rubric }] }, finishReason: 'STOP' }] }),
    call: async (url, extra) => createGeminiBackend({ baseUrl: url, ...rel, ...extra }).verifier.verify({ image: await png(), prompt: 'a cat' }),
  },
  {
    name: 'comfyui',
    ok: () => comfyHandler(0),
    call: (url, extra) => createComfyBackend({ url, workflow: 'examples/comfyui/flux-dev-t2i.json', pollMs: 5, ...rel, ...extra }).generator!.generate({ prompt: 'a cat', seed: 1 }),
  },
];

describe.each(cases)('$name reliability', (c) => {
  it('429 with Retry-After: waits as told, then succeeds', async () => {
    const ok = c.ok();
    server = await startServer((req, res, n) => (n === 0 ? json(res, 429, { error: { message: 'slow down' } }, { 'retry-after': '1' }) : ok(req, res, n)));
    await expect(c.call(server.url, {})).resolves.toBeDefined();
    const [first, second] = server.requests;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(950); // backoff alone would be ≤ 1 ms (retryBaseMs 1)
    expect(second!.at - first!.at).toBeLessThan(2_500);
  });

  it('500 then success', async () => {
    const ok = c.ok();
    server = await startServer((req, res, n) => (n === 0 ? json(res, 500, { error: { message: 'boom' } }) : ok(req, res, n)));
    await expect(c.call(server.url, {})).resolves.toBeDefined();
    expect(server.requests.length).toBeGreaterThanOrEqual(2);
  });

  it('a hanging server: the call fails within its timeout', async () => {
    server = await startServer(() => undefined);
    const t0 = Date.now();
    await expect(c.call(server.url, { timeoutMs: 300 })).rejects.toThrow(/timed out after 300 ms/);
    expect(Date.now() - t0).toBeLessThan(1_500);
  });

  it('cancellation aborts the request and stops retries', async () => {
    server = await startServer((_req, res, n) => (n === 0 ? json(res, 503, {}, { 'retry-after': '5' }) : undefined));
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('cancelled by test')), 100);
    const t0 = Date.now();
    // the role objects take the signal through CallOptions; wrap the case's call with it
    const p = callWithSignal(c, server.url, ac.signal);
    await expect(p).rejects.toThrow(/cancelled by test/);
    // well before the 5 s retry-after: the wait was cut short (the margin is for a loaded machine)
    expect(Date.now() - t0).toBeLessThan(4_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(server.requests).toHaveLength(1);
  });
});

async function callWithSignal(c: Case, url: string, signal: AbortSignal): Promise<unknown> {
  const opts = { signal };
  switch (c.name) {
    case 'openai chat':
      return createOpenAIBackend({ baseURL: `${url}/v1`, ...rel }).verifier.verify({ image: await png(), prompt: 'a cat' }, opts);
    case 'openai images':
      return createOpenAIBackend({ baseURL: `${url}/v1`, ...rel }).generator.generate({ prompt: 'a cat', seed: 1 }, opts);
    case 'fal':
      return createFalBackend({ baseUrl: url, ...rel }).generator.generate({ prompt: 'a cat', seed: 1 }, opts);
    case 'gemini':
      return createGeminiBackend({ baseUrl: url, ...rel }).verifier.verify({ image: await png(), prompt: 'a cat' }, opts);
    default:
      return createComfyBackend({ url, workflow: 'examples/comfyui/flux-dev-t2i.json', pollMs: 5, ...rel }).generator!.generate({ prompt: 'a cat', seed: 1 }, opts);
  }
}

describe('reliability pieces', () => {
  it('Retry-After: seconds or an HTTP date', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:02 GMT', now)).toBe(2000);
    expect(parseRetryAfter('garbage')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });

  it('backoff: full jitter under an exponential cap', () => {
    expect(backoffDelay(0, 100, 10_000, () => 0.999)).toBe(99);
    expect(backoffDelay(3, 100, 10_000, () => 0.5)).toBe(400);
    expect(backoffDelay(20, 100, 10_000, () => 0.999)).toBe(9990);
    expect(backoffDelay(2, 100, 10_000, () => 0)).toBe(0);
  });

  it('requests-per-minute limiter: the (rpm+1)th start waits for the window', async () => {
    const lim = new RateLimiter(2, 200);
    const t0 = Date.now();
    await lim.take();
    await lim.take();
    await lim.take();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
  });

  it('semaphore: at most `limit` at once, FIFO, abortable wait', async () => {
    const s = new Semaphore(1);
    const r1 = await s.acquire();
    const ac = new AbortController();
    const waiting = s.acquire(ac.signal);
    ac.abort(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
    const next = s.acquire();
    r1();
    const r2 = await next;
    r2();
  });

  it('concurrency: a backend instance shares one limit group and enforces its limit', async () => {
    let inFlight = 0;
    let peak = 0;
    server = await startServer(async (_req, res) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 30));
      inFlight--;
      json(res, 200, { created: 1, data: [{ b64_json: (await tinyPng()).toString('base64') }] });
    });
    const b = createOpenAIBackend({ baseURL: `${server.url}/v1`, concurrency: 2 });
    expect(b.generator.limitGroup).toBe(b.verifier.limitGroup);
    expect(b.generator.concurrency).toBe(2);
    await Promise.all(Array.from({ length: 6 }, (_, i) => b.generator.generate({ prompt: 'x', seed: i })));
    expect(peak).toBe(2);
  });

  it('scrubs registered keys and credential shapes', () => {
    process.env.RF_TEST_SCRUB = FAKE_KEY;
    createOpenAIBackend({ baseURL: 'http://127.0.0.1:1/v1', apiKeyEnv: 'RF_TEST_SCRUB' });
    expect(scrubSecrets(`bad key ${FAKE_KEY}!`)).toBe('bad key [redacted]!');
    expect(scrubSecrets('Authorization: Bearer abc.def')).not.toContain('abc.def');
    expect(scrubSecrets('GET /x?key=AIzaSECRET&alt=json')).not.toContain('AIzaSECRET');
  });
});
