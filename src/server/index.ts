export { startServer, toApiError, DEFAULT_HOST, DEFAULT_PORT, type RunningServer, type ServerOptions } from './server.js';
export { modelId, servedModels, type ServedModel } from './models.js';
export { ApiError } from './errors.js';
export { splitCorrectorInstruction, REFLEXION_MARKER } from './images.js';
export { probabilityOfYes, rubricAnswer, MIN_LOGPROB } from './chat.js';
