import type { BackendProvider } from '../registry.js';

// the adapter (and its SDK) loads only when a run uses this backend: the CLI's help and other backends' runs skip it
export const openaiProvider: BackendProvider = {
  name: 'openai',
  roles: ['generator', 'verifier', 'reflector', 'refiner', 'corrector'],
  description:
    'OpenAI or any OpenAI-compatible server (baseUrl: vLLM, SGLang, Ollama, LM Studio): chat VLM verifier (rubric | yesno), reflector, refiner; Images API generator and corrector. Key from $OPENAI_API_KEY (apiKeyEnv).',
  create: async (options) => (await import('./index.js')).createOpenAIBackend(options),
};
