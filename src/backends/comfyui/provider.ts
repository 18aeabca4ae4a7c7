import type { BackendProvider } from '../registry.js';

// the adapter (and its SDK) loads only when a run uses this backend: the CLI's help and other backends' runs skip it
export const comfyuiProvider: BackendProvider = {
  name: 'comfyui',
  roles: ['generator', 'corrector'],
  description:
    'ComfyUI HTTP API (baseUrl, default http://127.0.0.1:8188): any API-format workflow with {{prompt}}, {{seed}}, {{image}} placeholders as generator (workflow) or corrector (correctorWorkflow).',
  create: async (options) => (await import('./index.js')).createComfyBackend(options),
};
