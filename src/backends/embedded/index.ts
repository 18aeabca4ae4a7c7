import type { BackendProvider } from '../registry.js';
import { embeddedInputCheck } from './check.js';

export { MODELS_DIR, embeddedModelsPresent } from './files.js';

/** The embedded ShapeWorld models; onnxruntime loads only when a role is made. */
export const embeddedProvider: BackendProvider = {
  name: 'embedded',
  roles: ['generator', 'verifier', 'reflector', 'refiner', 'corrector'],
  description: 'the ShapeWorld models shipped with the package (ONNX, CPU): flow generator, yes/no verifier, reflector, prompt refiner, reflection-tuned corrector',
  create: async (options) => (await import('./backend.js')).createEmbeddedBackend(options),
  inputCheck: (options, roles) => embeddedInputCheck(options, roles),
};
