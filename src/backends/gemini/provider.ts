import type { BackendProvider } from '../registry.js';

// the adapter (and its SDK) loads only when a run uses this backend: the CLI's help and other backends' runs skip it
export const geminiProvider: BackendProvider = {
  name: 'gemini',
  roles: ['generator', 'verifier', 'reflector', 'refiner', 'corrector'],
  description:
    'Google Gemini (generateContent): rubric verifier, reflector, refiner with JSON output; image generator and corrector with an image model. Key from $GEMINI_API_KEY (apiKeyEnv).',
  create: async (options) => (await import('./index.js')).createGeminiBackend(options),
};
