import type { BackendProvider } from '../registry.js';

// the adapter (and its SDK) loads only when a run uses this backend: the CLI's help and other backends' runs skip it
export const falProvider: BackendProvider = {
  name: 'fal',
  roles: ['generator', 'corrector'],
  description:
    'fal.ai: FLUX.1 [dev] generator (fal-ai/flux/dev, seeded) and FLUX.1 Kontext corrector (fal-ai/flux-pro/kontext), or other endpoints of that shape. Key from $FAL_KEY (apiKeyEnv).',
  create: async (options) => (await import('./index.js')).createFalBackend(options),
};
