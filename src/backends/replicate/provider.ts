import type { BackendProvider } from '../registry.js';

// the adapter (and the image conversion it uses) loads only when a run uses this backend: the CLI's help and other backends' runs skip it
export const replicateProvider: BackendProvider = {
  name: 'replicate',
  roles: ['generator', 'corrector'],
  description:
    'Replicate: FLUX.1 [dev] generator (black-forest-labs/flux-dev, seeded) and FLUX.1 Kontext [pro] corrector (black-forest-labs/flux-kontext-pro), or other models of that shape. Token from $REPLICATE_API_TOKEN (apiKeyEnv).',
  create: async (options) => (await import('./index.js')).createReplicateBackend(options),
};
