/**
 * Acceptance over the shipped models: a best-of-8 (`noise`) search with our `openai` backend — generator through
 * images/generations with `sendSeed`, verifier in yes/no mode (logprobs) — against `serve` over the embedded
 * backend chooses the same image as the same search with the embedded backend in-process. The models ship with the
 * package, so this test does not skip when they are missing: it fails.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createEmbeddedBackend } from '../../src/backends/embedded/backend.js';
import { createOpenAIBackend } from '../../src/backends/openai/index.js';
import type { RoleSet } from '../../src/core/roles.js';
import type { SearchParams } from '../../src/core/types.js';
import { MemoryIO } from '../../src/search/io.js';
import { search } from '../../src/search/loop.js';
import type { RunningServer } from '../../src/server/server.js';
import { bytes, serve } from './helpers.js';

/** few sampler steps and one thread: fast, and the same options on both sides */
const OPTIONS = { steps: 4, threads: 1 };
let server: RunningServer;
let local: RoleSet;

beforeAll(async () => {
  const [served, inProcess] = await Promise.all([createEmbeddedBackend(OPTIONS), createEmbeddedBackend(OPTIONS)]);
  server = await serve(served);
  local = inProcess as RoleSet;
});
afterAll(() => server?.close());

const PROMPTS = ['a photo of a red circle left of a blue square', 'a photo of two green triangles'];

it.each(PROMPTS)('noise search over HTTP = in-process with the embedded models: same best id and image (%s)', async (prompt) => {
  const params: SearchParams = { strategy: 'noise', samples: 8, width: 2, depth: 0, seed: 3, chainHead: 'latest' };
  const o = (extra: Record<string, unknown>) => createOpenAIBackend({ baseURL: server.url, maxRetries: 0, ...extra });
  const remoteRoles: RoleSet = {
    generator: o({ imageModel: 'reflectionflow-generator', sendSeed: true }).generator,
    verifier: o({ model: 'reflectionflow-verifier', mode: 'yesno' }).verifier,
  };
  const localIo = new MemoryIO();
  const remoteIo = new MemoryIO();
  const a = await search({ prompt, params, roles: local, io: localIo });
  const b = await search({ prompt, params, roles: remoteRoles, io: remoteIo });

  expect(a.imagesGenerated).toBe(8);
  expect(b.imagesGenerated).toBe(8);
  for (const c of a.candidates) {
    expect(bytes(remoteIo.images.get(c.id)!.png).equals(bytes(localIo.images.get(c.id)!.png))).toBe(true);
    const r = b.candidates.find((x) => x.id === c.id)!;
    // remote score: 1 + P(yes) for yes, 1 − P(no) = P(yes) for no; local score: P(yes) (float32 logits: 6 digits)
    const p = c.evaluation!.score;
    expect(r.evaluation!.label).toBe(c.evaluation!.label);
    expect(r.evaluation!.score).toBeCloseTo(c.evaluation!.label === 'yes' ? 1 + p : p, 6);
  }
  // the choice is a real one: the verifier tells the images apart
  expect(new Set(a.candidates.map((c) => c.evaluation!.score)).size).toBeGreaterThan(1);
  expect(b.bestId).toBe(a.bestId);
  expect(bytes(remoteIo.images.get(b.bestId!)!.png).equals(bytes(localIo.images.get(a.bestId!)!.png))).toBe(true);
});
