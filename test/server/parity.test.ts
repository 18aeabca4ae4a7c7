/**
 * Acceptance: a whole reflection search with our `openai` backend for all five roles against `serve` over the
 * procedural backend makes the same images and the same final choice as the same search with the procedural roles
 * in-process. (The server turns P(yes) into yes/no logprobs and back; ranking is unchanged because the openai
 * backend's yes/no score is monotone in P(yes).)
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createOpenAIBackend } from '../../src/backends/openai/index.js';
import { createProceduralBackend } from '../../src/backends/procedural/index.js';
import type { RoleSet } from '../../src/core/roles.js';
import type { SearchParams } from '../../src/core/types.js';
import { MemoryIO } from '../../src/search/io.js';
import { search, type SearchOutcome } from '../../src/search/loop.js';
import type { RunningServer } from '../../src/server/server.js';
import { bytes, serve } from './helpers.js';

/** every pool image carries a defect, so every chain goes through reflect → refine → correct */
const OPTIONS = { defectRate: 1 };
let server: RunningServer;
beforeAll(async () => {
  server = await serve(createProceduralBackend(OPTIONS));
});
afterAll(() => server.close());

function httpRoles(url: string): RoleSet {
  const o = (extra: Record<string, unknown>) => createOpenAIBackend({ baseURL: url, maxRetries: 0, ...extra });
  return {
    generator: o({ imageModel: 'reflectionflow-generator', sendSeed: true }).generator,
    verifier: o({ model: 'reflectionflow-verifier', mode: 'yesno' }).verifier,
    reflector: o({ model: 'reflectionflow-reflector' }).reflector,
    refiner: o({ model: 'reflectionflow-refiner' }).refiner,
    corrector: o({ imageModel: 'reflectionflow-corrector', sendSeed: true }).corrector,
  };
}

async function run(prompt: string, params: SearchParams, roles: RoleSet): Promise<{ outcome: SearchOutcome; io: MemoryIO }> {
  const io = new MemoryIO();
  const outcome = await search({ prompt, params, roles, io });
  return { outcome, io };
}

const PROMPTS = ['a photo of a red circle left of a blue square', 'a photo of three green triangles', 'a photo of a yellow star above a purple diamond'];

it.each(PROMPTS)('reflection search over HTTP = in-process: same images, same final choice (%s)', async (prompt) => {
  const params: SearchParams = { strategy: 'reflection', samples: 8, width: 2, depth: 3, seed: 1, chainHead: 'latest' };
  const local = await run(prompt, params, createProceduralBackend(OPTIONS));
  const remote = await run(prompt, params, httpRoles(server.url));

  expect(local.outcome.imagesGenerated).toBe(8 + 2 * 3);
  expect(remote.outcome.imagesGenerated).toBe(local.outcome.imagesGenerated);
  expect(remote.outcome.candidates.map((c) => c.id)).toEqual(local.outcome.candidates.map((c) => c.id));
  for (const c of local.outcome.candidates) {
    const r = remote.outcome.candidates.find((x) => x.id === c.id)!;
    expect(r.prompt).toBe(c.prompt);
    expect(r.reflection?.items ?? []).toEqual(c.reflection?.items ?? []);
    expect(bytes(remote.io.images.get(c.id)!.png).equals(bytes(local.io.images.get(c.id)!.png))).toBe(true);
    expect(r.evaluation?.label).toBe(c.evaluation?.label);
  }
  // the rounds really used the reflector, refiner and corrector
  expect(local.outcome.candidates.some((c) => c.origin === 'correct' && c.reflection?.items.length)).toBe(true);
  expect(local.outcome.candidates.filter((c) => c.origin === 'correct').length).toBe(2 * 3);
  expect(remote.io.events.filter((e) => e.role === 'refiner').length).toBeGreaterThan(0);

  expect(remote.outcome.bestId).toBe(local.outcome.bestId);
  expect(bytes(remote.io.images.get(remote.outcome.bestId!)!.png).equals(bytes(local.io.images.get(local.outcome.bestId!)!.png))).toBe(true);
  expect(remote.outcome.chains.map((c) => c.bestId)).toEqual(local.outcome.chains.map((c) => c.bestId));
});
