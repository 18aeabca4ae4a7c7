import { parsePrompt } from '../../shapeworld/prompts.js';
import type { BackendProvider } from '../registry.js';

// the adapter (and its SDK) loads only when a run uses this backend: the CLI's help and other backends' runs skip it
/** Provider record for the backend registry (`registerBackend(proceduralProvider)`). */
export const proceduralProvider: BackendProvider = {
  name: 'procedural',
  roles: ['generator', 'verifier', 'reflector', 'refiner', 'corrector'],
  description: 'ShapeWorld procedural roles (generator, oracle verifier, reflector, refiner, corrector) for tests; no models',
  create: async (options) => (await import('./index.js')).createProceduralBackend(options),
  // its generator parses the prompt (the other roles read what it drew)
  inputCheck: (_options, roles) => ({ prompt: (prompt) => void (roles.includes('generator') && parsePrompt(prompt)) }),
};
