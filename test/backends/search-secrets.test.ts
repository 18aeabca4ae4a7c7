/**
 * A whole reflection search through runSearch into a temp folder, with every role served by one of this folder's
 * backends against local servers (fal generator, ComfyUI corrector, OpenAI-compatible rubric verifier and refiner,
 * Gemini reflector). Fake keys are set in the environment; one server answers a 401 that echoes the key it was sent.
 * No key may appear in any file under the run directory or on stderr.
 * Wire formats: see the doc pages cited in openai.test.ts, fal.test.ts, gemini.test.ts and comfyui.test.ts.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { createComfyBackend } from '../../src/backends/comfyui/index.js';
import { createFalBackend } from '../../src/backends/fal/index.js';
import { createGeminiBackend } from '../../src/backends/gemini/index.js';
import { createOpenAIBackend } from '../../src/backends/openai/index.js';
import { redactSecrets } from '../../src/config/load.js';
import { runSearch } from '../../src/run.js';
import { comfyHandler, json, jsonBody, startServer, tinyPng, type TestServer } from './helpers.js';

const KEYS = {
  RF_E2E_OPENAI: 'sk-e2e-OPENAIKEY-5f3c9a1b7d2e4f60',
  RF_E2E_FAL: 'fal-e2e-FALKEY-8a7b6c5d4e3f2a1b',
  RF_E2E_GEMINI: 'AIza-e2e-GEMINIKEY-0a1b2c3d4e5f',
};
const servers: TestServer[] = [];

beforeAll(() => Object.assign(process.env, KEYS));
afterAll(async () => {
  for (const s of servers) await s.close();
  for (const k of Object.keys(KEYS)) delete process.env[k];
});

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

it('a reflection search over remote backends leaves no API key in the run directory or on stderr', async () => {
  const png = (await tinyPng()).toString('base64');
  let verifies = 0;
  const openai = await startServer((req, res) => {
    const body = jsonBody(req);
    const system = String(body.messages[0]?.content ?? '');
    if (/strict judge/.test(system)) {
      // the first verification is refused with the key echoed back, as some services do
      if (verifies++ === 0) return json(res, 401, { error: { message: `Incorrect API key provided: ${req.headers.authorization}` } });
      const overall = 3 + (verifies % 5);
      const content = JSON.stringify({ prompt_alignment: overall, visual_quality: 7, composition: 7, overall_score: overall });
      return json(res, 200, { id: 'c', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content } }] });
    }
    json(res, 200, { id: 'c', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'exactly two red cubes side by side' } }] });
  });
  const fal = await startServer((_req, res) => json(res, 200, { images: [{ url: `data:image/png;base64,${png}` }] }));
  const gemini = await startServer((_req, res) =>
    json(res, 200, { candidates: [{ content: { role: 'model', parts: [{ text: JSON.stringify({ instructions: ['Add one red cube to the right of the first.'] }) }] }, finishReason: 'STOP' }] }),
  );
  let comfyRuns = 0;
  const comfyBase = comfyHandler(0);
  const comfy = await startServer((req, res, n) => {
    if (req.path === '/prompt') comfyRuns++;
    return comfyBase(req, res, n);
  });
  servers.push(openai, fal, gemini, comfy);

  const options = {
    generator: { baseUrl: fal.url, apiKeyEnv: 'RF_E2E_FAL' },
    corrector: { url: comfy.url, correctorWorkflow: 'examples/comfyui/flux-kontext-edit.json', pollMs: 5 },
    vlm: { baseURL: `${openai.url}/v1`, apiKeyEnv: 'RF_E2E_OPENAI', model: 'qwen-vl', retryBaseMs: 1 },
    reflector: { baseUrl: gemini.url, apiKeyEnv: 'RF_E2E_GEMINI', model: 'gem' },
  };
  const openaiRoles = createOpenAIBackend(options.vlm);
  const roles = {
    generator: createFalBackend(options.generator).generator,
    corrector: createComfyBackend(options.corrector).corrector!,
    verifier: openaiRoles.verifier,
    refiner: openaiRoles.refiner,
    reflector: createGeminiBackend(options.reflector).reflector,
  };

  const stderr: string[] = [];
  const spies = [
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => {
      stderr.push(String(chunk));
      return true;
    }),
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void stderr.push(a.map(String).join(' '))),
    vi.spyOn(console, 'warn').mockImplementation((...a: unknown[]) => void stderr.push(a.map(String).join(' '))),
  ];
  const out = mkdtempSync(path.join(tmpdir(), 'rf-remote-'));
  let outcome;
  try {
    outcome = await runSearch({
      prompt: 'two red cubes',
      params: { strategy: 'reflection', samples: 3, width: 1, depth: 2, seed: 0, chainHead: 'latest' },
      roles,
      outDir: out,
      config: redactSecrets({ roles: { generator: { backend: 'fal', ...options.generator }, verifier: { backend: 'openai', ...options.vlm } } }),
    });
  } finally {
    for (const s of spies) s.mockRestore();
  }

  // the search ran through every backend, and the refused verification ranked last instead of stopping the run
  expect(outcome.imagesGenerated).toBe(5);
  expect(comfyRuns).toBe(2);
  expect(fal.requests).toHaveLength(3);
  expect(gemini.requests.length).toBeGreaterThanOrEqual(2);
  expect(gemini.requests[0]!.headers['x-goog-api-key']).toBe(KEYS.RF_E2E_GEMINI);
  expect(fal.requests[0]!.headers.authorization).toBe(`Key ${KEYS.RF_E2E_FAL}`);
  const failed = outcome.candidates.filter((c) => c.verifyError);
  expect(failed).toHaveLength(1);
  expect(failed[0]!.verifyError).toMatch(/401/);
  expect(outcome.bestId).not.toBe(failed[0]!.id);

  const files = walk(outcome.dir);
  expect(files.some((f) => f.endsWith('events.jsonl'))).toBe(true);
  expect(files.some((f) => f.endsWith('run.json'))).toBe(true);
  const events = readFileSync(path.join(outcome.dir, 'events.jsonl'), 'utf8');
  expect(events).toMatch(/Incorrect API key provided/); // the error is recorded…
  for (const f of files) {
    const text = readFileSync(f).toString('latin1');
    for (const key of Object.values(KEYS)) expect(text.includes(key), `${key} in ${f}`).toBe(false); // …without the key
    expect(/OPENAIKEY|FALKEY|GEMINIKEY/.test(text), f).toBe(false);
  }
  const err = stderr.join('');
  for (const key of Object.values(KEYS)) expect(err.includes(key)).toBe(false);
  expect(/OPENAIKEY|FALKEY|GEMINIKEY/.test(err)).toBe(false);
});
