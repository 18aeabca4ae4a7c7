/**
 * Cost accounting: every call counted per role with the tokens the service reports and the retries it took,
 * concurrent calls never mixing their numbers, and a price estimate from the config's price table over the
 * built-in one.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { printSummary } from '../src/cli/actions/run.js';
import { createFalBackend } from '../src/backends/fal/index.js';
import { createOpenAIBackend } from '../src/backends/openai/index.js';
import { createProceduralBackend } from '../src/backends/procedural/index.js';
import { BUILT_IN_PRICES, builtInNote, resolvePrice } from '../src/core/prices.js';
import { reportUsage, withUsage } from '../src/core/usage.js';
import { runSearch } from '../src/run.js';
import { json, jsonBody, startServer, tinyPng, type TestServer } from './backends/helpers.js';
import { tmpDir } from './helpers/cli.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A yes/no answer whose usage names the request: prompt_tokens = 100 + n, completion_tokens = 1. */
function answer(n: number) {
  const top = [
    { token: 'yes', logprob: Math.log(0.7), bytes: null },
    { token: 'no', logprob: Math.log(0.3), bytes: null },
  ];
  return {
    id: `c${n}`,
    object: 'chat.completion',
    created: 0,
    model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', content: 'yes' }, logprobs: { content: [{ ...top[0], top_logprobs: top }] }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 100 + n, completion_tokens: 1, total_tokens: 101 + n },
  };
}

describe('usage', () => {
  it('keeps concurrent calls apart', async () => {
    const calls = await Promise.all(
      [1, 2, 3].map((k) =>
        withUsage(async () => {
          for (let i = 0; i < k; i++) {
            await new Promise((r) => setTimeout(r, 5 * (4 - k)));
            reportUsage({ inputTokens: 10, retries: 1 });
          }
          return k;
        }),
      ),
    );
    expect(calls.map((c) => c.usage)).toEqual([
      { inputTokens: 10, retries: 1 },
      { inputTokens: 20, retries: 2 },
      { inputTokens: 30, retries: 3 },
    ]);
    reportUsage({ inputTokens: 5 }); // outside a call: ignored, no throw
  });

  it('a run counts each role’s calls, images, tokens and retries, and prices them from the table', async () => {
    let n = 0;
    server = await startServer((req, res) => {
      n++;
      if (n === 2) return json(res, 503, { error: { message: 'busy' } }); // one retry
      expect(jsonBody(req).max_tokens).toBe(1);
      return json(res, 200, answer(n));
    });
    const verifier = createOpenAIBackend({ baseURL: `${server.url}/v1`, apiKeyEnv: 'RF_TEST_OPENAI_KEY', model: 'vlm', mode: 'yesno', retryBaseMs: 5, concurrency: 2 }).verifier!;
    const procedural = createProceduralBackend();
    const outcome = await runSearch({
      prompt: 'a red circle',
      params: { strategy: 'noise', samples: 6, width: 1, depth: 0, seed: 1, chainHead: 'latest' },
      roles: { generator: procedural.generator, verifier },
      outDir: tmpDir(),
      report: false,
      prices: { 'openai:vlm': { perMillionInputTokens: 2.5, perMillionOutputTokens: 10 }, procedural: { perImage: 0.01 } },
    });
    const run = JSON.parse(readFileSync(path.join(outcome.dir, 'run.json'), 'utf8'));
    const u = run.result.usage;
    expect(u.generator).toMatchObject({ calls: 6, images: 6, failed: 0, inputTokens: 0 });
    expect(u.verifier).toMatchObject({ calls: 6, failed: 0, retries: 1, outputTokens: 6 });
    // each event carries its own call's tokens: 100 + the request number that answered it
    const events = readFileSync(path.join(outcome.dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const verifies = events.filter((e) => e.role === 'verifier');
    expect(verifies.reduce((a, e) => a + e.usage.inputTokens, 0)).toBe(u.verifier.inputTokens);
    expect(new Set(verifies.map((e) => e.usage.inputTokens)).size).toBe(6);
    expect(verifies.filter((e) => e.usage.retries === 1)).toHaveLength(1);
    expect(run.backends.generator).toBe('procedural');
    const expected = 6 * 0.01 + (u.verifier.inputTokens * 2.5) / 1e6 + (6 * 10) / 1e6;
    expect(run.result.cost.total).toBeCloseTo(expected, 10);
    expect(run.result.cost.perRole.generator).toBeCloseTo(0.06, 10);
  });
});

describe('built-in prices', () => {
  const KONTEXT = 'fal:fal-ai/flux-pro/kontext';
  const builtIn = BUILT_IN_PRICES[KONTEXT]!;

  it('each has an official source and the date it was read', () => {
    for (const [name, p] of Object.entries(BUILT_IN_PRICES)) {
      expect(name).toMatch(/^[a-z]+:/);
      expect(p.source).toMatch(/^https:\/\//);
      expect(p.asOf).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
  });

  it('a config entry overrides a built-in price, null switches it off, other backends have none', () => {
    expect(resolvePrice(KONTEXT, undefined)).toEqual({ price: { perImage: builtIn.perImage }, builtIn: { source: builtIn.source, asOf: builtIn.asOf } });
    expect(resolvePrice(KONTEXT, { [KONTEXT]: { perImage: 0.5 } })).toEqual({ price: { perImage: 0.5 } });
    expect(resolvePrice(KONTEXT, { [KONTEXT]: null })).toBeNull();
    expect(resolvePrice('procedural', { 'openai:gpt-4o': { perCall: 1 } })).toBeNull();
    expect(builtInNote({ [KONTEXT]: builtIn })).toBe(`built-in price for ${KONTEXT} (fal.ai, read ${builtIn.asOf})`);
  });

  it("fal's default roles are priced under the names they report; the generator sends no size, so fal's default holds", async () => {
    const png = (await tinyPng()).toString('base64');
    server = await startServer((_req, res) => json(res, 200, { images: [{ url: `data:image/png;base64,${png}` }] }));
    const fal = createFalBackend({ baseUrl: server.url });
    expect(resolvePrice(fal.corrector.name, undefined)?.price).toEqual({ perImage: 0.04 });
    const dev = BUILT_IN_PRICES[fal.generator.name]!;
    expect(fal.generator.name).toBe('fal:fal-ai/flux/dev');
    expect(resolvePrice(fal.generator.name, undefined)).toEqual({ price: { perImage: 0.025 }, builtIn: { source: dev.source, asOf: dev.asOf } });
    // the per-image price is fal's per-megapixel one at its default size (landscape_4_3, 1024x768: one megapixel)
    await fal.generator.generate({ prompt: 'x', seed: 1 });
    expect(jsonBody(server.requests[0]!)).not.toHaveProperty('image_size');
  });

  /** A search whose generator is priced per image under `name` (the procedural generator, renamed). */
  async function priced(prices: Record<string, { perImage: number } | null> | undefined, report = false) {
    const procedural = createProceduralBackend();
    const outcome = await runSearch({
      prompt: 'a red circle',
      params: { strategy: 'noise', samples: 4, width: 1, depth: 0, seed: 1, chainHead: 'latest' },
      roles: { generator: { ...procedural.generator, name: KONTEXT }, verifier: procedural.verifier },
      outDir: tmpDir(),
      report,
      ...(prices ? { prices } : {}),
    });
    return { dir: outcome.dir, run: JSON.parse(readFileSync(path.join(outcome.dir, 'run.json'), 'utf8')) };
  }

  it('prices a run with the built-in table when the config has none, and says so in run.json and the report', async () => {
    const { dir, run } = await priced(undefined, true);
    expect(run.backends.generator).toBe(KONTEXT);
    expect(run.result.cost.total).toBeCloseTo(4 * builtIn.perImage!, 10);
    expect(run.result.cost.perRole).toEqual({ generator: run.result.cost.total });
    expect(run.result.cost.builtIn).toEqual({ [KONTEXT]: { source: builtIn.source, asOf: builtIn.asOf } });
    const html = readFileSync(path.join(dir, 'report.html'), 'utf8');
    expect(html).toContain('Estimated price');
    expect(html).toContain(`built-in price for ${KONTEXT} (fal.ai, read ${builtIn.asOf})`);
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      printSummary({ dir, run, failures: [] } as unknown as Parameters<typeof printSummary>[0], '');
      const calls = String(out.mock.calls.map((c) => c[0]).join('')).split('\n').find((l) => l.includes('calls:'));
      expect(calls).toContain(`estimated price ${run.result.cost.total.toPrecision(3)} (built-in price for ${KONTEXT} (fal.ai, read ${builtIn.asOf}))`);
    } finally {
      out.mockRestore();
    }
  });

  it("the config's entry wins over the built-in one, and null leaves the backend unpriced", async () => {
    const mine = (await priced({ [KONTEXT]: { perImage: 0.5 } })).run.result.cost;
    expect(mine.total).toBeCloseTo(2, 10);
    expect(mine.builtIn).toBeUndefined();
    expect((await priced({ [KONTEXT]: null })).run.result.cost).toBeUndefined();
  });
});
