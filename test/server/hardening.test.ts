/** `serve` against hostile or careless clients: huge inputs, bad URLs, other hosts and origins, slow clients, logs. */
import http from 'node:http';
import net from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toMessages } from '../../src/backends/openai/index.js';
import { createProceduralBackend } from '../../src/backends/procedural/index.js';
import { yesNoQuestion } from '../../src/roles/templates.js';
import type { Image } from '../../src/core/types.js';
import type { RunningServer } from '../../src/server/server.js';
import { isApiError, raw, sdk, serve } from './helpers.js';

const PROMPT = 'a photo of a red circle left of a blue square';
const direct = createProceduralBackend();

/** A request with any headers (fetch will not send another Host); status, headers and body text. */
function request(server: RunningServer, path: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, path, method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

let server: RunningServer;
let client: OpenAI;
const lines: string[] = [];
let corrections = 0;

beforeAll(async () => {
  const roles = createProceduralBackend();
  const corrector = { ...roles.corrector, correct: (...args: Parameters<typeof roles.corrector.correct>) => (corrections++, roles.corrector.correct(...args)) };
  server = await serve({ ...roles, corrector }, { log: (l) => lines.push(l) });
  client = sdk(server);
});
afterAll(() => server.close());

describe('error bodies', () => {
  it('a 10 MB prompt gets a 400 of at most 1 KB, as does a long prompt the roles cannot read', async () => {
    const post = (path: string, body: unknown) =>
      request(server, `/v1${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const huge = `a photo of a ${'purple elephant '.repeat(10 * 65536)}`;
    const image = await direct.generator.generate({ prompt: PROMPT, seed: 1 });
    const answers = [
      await post('/images/generations', { prompt: huge }),
      await post('/chat/completions', { model: 'reflectionflow-verifier', messages: toMessages({ text: yesNoQuestion(huge), image }) }),
      // under the length limit: the role's own error quotes the prompt, and the body is cut
      await post('/images/generations', { prompt: huge.slice(0, 31_000) }),
    ];
    for (const r of answers) {
      expect(r.status).toBe(400);
      expect(Buffer.byteLength(r.text)).toBeLessThanOrEqual(1024);
      expect(isApiError(JSON.parse(r.text))).toBe(true);
    }
    expect(JSON.parse(answers[2]!.text).error.message).toMatch(/cannot parse prompt/);
    const e = await client.images.generate({ model: 'reflectionflow-generator', prompt: huge }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
    expect((e as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('prompt');
  });

  it('a 10 MB model name or size is quoted by a short prefix', async () => {
    const huge = 'x'.repeat(10 * 1024 * 1024);
    const model = await client.chat.completions.create({ model: huge, messages: [{ role: 'user', content: 'hi' }] }).catch((x: unknown) => x);
    expect(model).toBeInstanceOf(OpenAI.NotFoundError);
    expect(JSON.stringify((model as InstanceType<typeof OpenAI.NotFoundError>).error).length).toBeLessThanOrEqual(1024);
    const size = await request(server, '/v1/images/generations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: PROMPT, size: huge }) });
    expect(size.status).toBe(400);
    expect(Buffer.byteLength(size.text)).toBeLessThanOrEqual(1024);
    expect(JSON.parse(size.text).error.message).toMatch(/10485760 characters/);
  });
});

describe('URLs and the request log', () => {
  it('a URL that does not decode is a 400, not a 500', async () => {
    const r = await raw(server, '/models/%E0%A4%A');
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('invalid_url');
  });

  it('the log line has the path, never the query string or the key', async () => {
    lines.length = 0;
    const r = await raw(server, '/models?api-key=secret-in-query', { headers: { authorization: 'Bearer secret-in-header' } });
    expect(r.status).toBe(200);
    await client.models.list();
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^GET \/v1\/models 200 \d+ms$/);
    expect(lines.join('\n')).not.toMatch(/secret|\?/);
  });
});

describe('Host and Origin', () => {
  it('a Host that is not this server is 403 host_not_allowed; loopback names pass', async () => {
    const evil = await request(server, '/v1/models', { headers: { host: `evil.example:${server.port}` } });
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.text).error.code).toBe('host_not_allowed');
    for (const host of [`127.0.0.1:${server.port}`, `localhost:${server.port}`, 'localhost']) {
      expect((await request(server, '/v1/models', { headers: { host } })).status).toBe(200);
    }
  });

  it('a configured name passes', async () => {
    const s = await serve(createProceduralBackend(), { allowedHosts: ['rf.example'] });
    try {
      expect((await request(s, '/v1/models', { headers: { host: 'rf.example' } })).status).toBe(200);
      expect((await request(s, '/v1/models', { headers: { host: 'other.example' } })).status).toBe(403);
    } finally {
      await s.close();
    }
  });

  it('a cross-site form post to images/edits is refused before the corrector runs; a same-origin one is not', async () => {
    const bad = await direct.generator.generate({ prompt: PROMPT, seed: 1 });
    const form = async (origin: string) => {
      const body = new FormData();
      body.set('prompt', `${PROMPT} [Reflexion]: Move the red circle to the left.`);
      body.set('image', new Blob([new Uint8Array(bad.png)], { type: 'image/png' }), 'a.png');
      const req = new Request('http://x/', { method: 'POST', body });
      const headers = { 'content-type': req.headers.get('content-type')!, origin };
      return request(server, '/v1/images/edits', { method: 'POST', headers, body: Buffer.from(await req.arrayBuffer()) });
    };
    corrections = 0;
    for (const origin of ['http://evil.example', 'null', `http://127.0.0.1:${server.port + 1}`]) {
      const r = await form(origin);
      expect(r.status).toBe(403);
      expect(JSON.parse(r.text).error.code).toBe('origin_not_allowed');
    }
    expect(corrections).toBe(0);
    const same = await form(`http://127.0.0.1:${server.port}`);
    expect(same.status).toBe(200);
    expect(corrections).toBe(1);
  });
});

describe('timeouts', () => {
  it('a client that trickles its body is cut off; a slow role call is not', async () => {
    const png = (await direct.generator.generate({ prompt: PROMPT, seed: 1 })).png;
    const generator = { name: 'slow', concurrency: 1, generate: () => new Promise<Image>((r) => setTimeout(() => r({ png }), 1_500)) };
    const s = await serve({ generator }, { headersTimeoutMs: 300, bodyTimeoutMs: 600 });
    try {
      const started = Date.now();
      const answer = await new Promise<string>((resolve) => {
        const socket = net.connect(s.port, '127.0.0.1');
        let got = '';
        socket.on('data', (d) => (got += d.toString()));
        socket.on('close', () => resolve(got));
        socket.write(`POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`);
        const trickle = setInterval(() => (socket.writable ? socket.write(' ') : clearInterval(trickle)), 100);
        socket.on('close', () => clearInterval(trickle));
      });
      expect(answer).toMatch(/^HTTP\/1\.1 408/);
      expect(Date.now() - started).toBeLessThan(5_000);
      const res = await sdk(s).images.generate({ prompt: PROMPT });
      expect(res.data).toHaveLength(1);
    } finally {
      await s.close();
    }
  });
});
