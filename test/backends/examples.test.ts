/**
 * Every config in examples/ passes our schema, plans its roles, and (for the backends of this folder) builds them:
 * the options are ones the providers accept. `embedded` roles are planned but built by that backend's own tests.
 */
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { comfyuiProvider } from '../../src/backends/comfyui/index.js';
import { falProvider } from '../../src/backends/fal/index.js';
import { geminiProvider } from '../../src/backends/gemini/index.js';
import { openaiProvider } from '../../src/backends/openai/index.js';
import { embeddedProvider } from '../../src/backends/embedded/index.js';
import { createBackend, registerBackend } from '../../src/backends/registry.js';
import { loadConfigFile } from '../../src/config/load.js';
import { planRoles, resolveParams } from '../../src/config/resolve.js';
import { FAKE_KEY } from './helpers.js';

const files = readdirSync('examples').filter((f) => /\.(json|ya?ml)$/.test(f));
const saved: Record<string, string | undefined> = {};

beforeAll(() => {
  for (const p of [openaiProvider, falProvider, geminiProvider, comfyuiProvider, embeddedProvider]) registerBackend(p);
  for (const k of ['OPENAI_API_KEY', 'FAL_KEY', 'GEMINI_API_KEY']) {
    saved[k] = process.env[k];
    process.env[k] = FAKE_KEY;
  }
});
afterAll(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe('examples/', () => {
  it('has configs to check', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  it.each(files)('%s validates, plans and builds', async (file) => {
    const { config, layout } = loadConfigFile(`examples/${file}`);
    expect(layout).toBe('ours');
    const params = resolveParams(config, {});
    const plans = planRoles(config, params.strategy);
    expect(plans.length).toBeGreaterThanOrEqual(2);
    for (const plan of plans) {
      if (plan.backend === 'embedded') continue;
      const roles = await createBackend(plan.backend, plan.options);
      expect(roles[plan.role], `${file}: ${plan.backend} serves the ${plan.role}`).toBeDefined();
    }
  });
});
