/** `serve` under load: a bounded queue per model (429 + Retry-After), and aborted requests that are never computed. */
import OpenAI from 'openai';
import type { ModelSession } from '../../src/backends/embedded/onnx.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmbeddedBackend } from '../../src/backends/embedded/backend.js';
import type { FlowGenerator } from '../../src/backends/embedded/generator.js';
import { createProceduralBackend } from '../../src/backends/procedural/index.js';
import type { RoleSet } from '../../src/core/roles.js';
import type { Image } from '../../src/core/types.js';
import { ModelQueues } from '../../src/server/queue.js';
import type { RunningServer } from '../../src/server/server.js';
import { postJson, sdk, serve } from './helpers.js';

const PROMPT = 'a photo of a red circle left of a blue square';
const until = async (ok: () => boolean, ms = 20_000) => {
  for (const end = Date.now() + ms; !ok(); ) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('queue per model', () => {
  const direct = createProceduralBackend();
  let png: Uint8Array;
  let server: RunningServer;
  let started = 0;
  beforeAll(async () => {
    png = (await direct.generator.generate({ prompt: PROMPT, seed: 1 })).png;
    const generator = {
      name: 'slow',
      concurrency: 1,
      generate: () => (started++, new Promise<Image>((r) => setTimeout(() => r({ png }), 300))),
    };
    server = await serve({ generator, verifier: direct.verifier }, { maxQueuedCalls: 3 });
  });
  afterAll(() => server.close());

  it('past the queue: 429 rate_limit_exceeded with Retry-After, nothing called; the SDK retries after it and gets its image', async () => {
    const c = sdk(server);
    const admitted = [c.images.generate({ prompt: PROMPT, n: 2 } as any), c.images.generate({ prompt: PROMPT })];
    await until(() => started === 1);
    const over = await c.images.generate({ prompt: PROMPT }).catch((e: unknown) => e);
    expect(over).toBeInstanceOf(OpenAI.RateLimitError);
    const err = over as InstanceType<typeof OpenAI.RateLimitError>;
    expect(err.code).toBe('rate_limit_exceeded');
    expect(Number(err.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // the verifier is another model: its queue is its own
    expect((await c.models.list()).data).toHaveLength(2);
    const retried = new OpenAI({ baseURL: server.url, apiKey: 'k', maxRetries: 3 }).images.generate({ prompt: PROMPT });
    expect((await Promise.all(admitted)).map((r) => r.data!.length)).toEqual([2, 1]);
    expect((await retried).data).toHaveLength(1);
    expect(started).toBe(4);
  });

  it('a request larger than the whole queue is a 400, not a 429 to retry forever', async () => {
    const r = await postJson(server, '/images/generations', { prompt: PROMPT, n: 4 });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('queue_too_small');
  });
});

describe('ModelQueues', () => {
  it('calls of a request whose client has gone stop counting at once: the queue admits others while they still wait for their turn, which they then skip', async () => {
    const queues = new ModelQueues(3);
    const role = { name: 'one at a time', concurrency: 1 };
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const made: string[] = [];
    const make = (name: string) => async () => (made.push(name), name === 'a' ? gate.then(() => name) : name);
    const a = queues.calls(role, 1, new AbortController().signal, make('a'));
    const client = new AbortController();
    const b = queues.calls(role, 2, client.signal, make('b'));
    await expect(queues.calls(role, 1, new AbortController().signal, make('x'))).rejects.toMatchObject({ status: 429 });
    client.abort(new Error('gone'));
    const c = queues.calls(role, 2, new AbortController().signal, make('c'));
    open();
    expect(await a).toEqual(['a']);
    await expect(b).rejects.toThrow('gone');
    expect(await c).toEqual(['c', 'c']);
    expect(made).toEqual(['a', 'c', 'c']);
    // and nothing is left counted: the whole queue is free again
    expect(await queues.calls(role, 3, new AbortController().signal, make('d'))).toEqual(['d', 'd', 'd']);
  });
});

describe('aborts with the embedded models', () => {
  let server: RunningServer;
  /** the seeds the generator's model computed, batch by batch */
  const computed: number[] = [];
  const rows: number[] = [];
  /** the signals the server gave the generator's calls */
  const signals: AbortSignal[] = [];
  let beforePass = async () => {};
  let passFailed: unknown;
  let steps = 0;

  beforeAll(async () => {
    const roles = (await createEmbeddedBackend({ threads: 1 })) as RoleSet;
    const generator = roles.generator as FlowGenerator;
    const generate = generator.generate.bind(generator);
    generator.generate = (req, opts) => (signals.push(opts!.signal!), generate(req, opts));
    const sample = generator.sampleUnlessAborted.bind(generator);
    generator.sampleUnlessAborted = (reqs) => (computed.push(...reqs.map((r) => r.seed)), sample(reqs));
    // the rows of every forward pass of its model; `beforePass` runs before each
    const session = (generator as unknown as { session: ModelSession }).session;
    const run = session.run.bind(session);
    session.run = (feeds) => {
      rows.push(feeds.x!.dims[0]!);
      return beforePass().then(
        () => run(feeds),
        (err: unknown) => {
          passFailed = err;
          throw err;
        },
      );
    };
    steps = generator.steps;
    server = await serve(roles);
  });
  afterAll(() => server?.close());

  it('requests aborted while a batch runs leave the batcher queue: the model never computes them', async () => {
    const c = sdk(server);
    const busy = c.images.generate({ prompt: PROMPT, n: 8, seed: 100 } as any);
    await until(() => computed.length === 8);
    const gone = Array.from({ length: 5 }, async (_, k) => {
      const controller = new AbortController();
      const call = c.images.generate({ prompt: PROMPT, n: 4, seed: 200 + 10 * k } as any, { signal: controller.signal });
      setTimeout(() => controller.abort(), 100);
      return call.then(() => 'answered', () => 'aborted');
    });
    expect(await Promise.all(gone)).toEqual(Array(5).fill('aborted'));
    expect((await busy).data).toHaveLength(8);
    const next = await c.images.generate({ prompt: PROMPT, seed: 300 } as any);
    expect(next.data).toHaveLength(1);
    expect(computed).toEqual([100, 101, 102, 103, 104, 105, 106, 107, 300]);
  });

  it('a request aborted while its batch runs leaves the batch at the next step: its rows are computed no more', async () => {
    const c = sdk(server);
    const controller = new AbortController();
    rows.length = 0;
    signals.length = 0;
    // the batch's first forward pass starts once the client has gone and the server has seen it
    beforePass = async () => {
      beforePass = async () => {};
      controller.abort();
      await until(() => signals.length >= 4 && signals.slice(0, 4).every((s) => s.aborted));
    };
    const gone = c.images.generate({ prompt: PROMPT, n: 4, seed: 500 } as any, { signal: controller.signal });
    expect(await gone.then(() => 'answered', () => 'aborted')).toBe('aborted');
    await until(() => rows.length > 0);
    const next = await c.images.generate({ prompt: PROMPT, seed: 501 } as any);
    expect(next.data).toHaveLength(1);
    // 4 images × (conditional + unconditional) rows in the pass that had started, then the next request's own steps
    expect(rows).toEqual([8, ...Array(steps).fill(2)]);
    expect(passFailed).toBeUndefined();
  });

  it('a size the embedded models do not make is a 400 (they make 32×32 only, no resizing)', async () => {
    const r = await postJson(server, '/images/generations', { prompt: PROMPT, size: '64x64' });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ param: 'size', code: 'invalid_value' });
    expect(r.body.error.message).toMatch(/32/);
    expect((await sdk(server).images.generate({ prompt: PROMPT, size: '32x32', seed: 1 } as any)).data).toHaveLength(1);
  });
});
