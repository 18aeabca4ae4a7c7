/** reflectionflow: the library API. */
export type * from './core/types.js';
export type * from './core/roles.js';
export { correctorInstruction } from './core/roles.js';
export { UserError, ModelOutputError } from './core/errors.js';
export { search, requiredRoles, type SearchInput, type SearchOutcome } from './search/loop.js';
export { makePlan, type SearchPlan } from './search/plan.js';
export { rank, bestOf } from './search/select.js';
export { deriveSeed } from './search/seeds.js';
export { MemoryIO, type SearchIO } from './search/io.js';
export type { CallListener } from './search/calls.js';
export { RunStore, readEvents, readRunRecord } from './store/run-store.js';
export type { CallEvent, RunRecord, RunStatus } from './store/types.js';
export { runSearch, resumeSearch, type RunOptions, type RunOutcome } from './run.js';
export { loadConfigFile, parseConfig } from './config/load.js';
export { loadPromptFile, type PromptRecord } from './config/prompts.js';
export { configSchema, type ConfigFile } from './config/schema.js';
export { registerBackend, createBackend, listBackends, type BackendProvider } from './backends/registry.js';
export { writeReport, renderReport } from './report/html.js';
export { startServer, type RunningServer, type ServerOptions } from './server/index.js';
export { runEval, type EvalOptions } from './eval/harness.js';
export { rocAuc, type EvalReport } from './eval/metrics.js';
export { evaluateImage } from './shapeworld/evaluate.js';
export { testPrompts, trainPrompts, parsePrompt } from './shapeworld/prompts.js';
export { renderScene } from './shapeworld/render.js';
export { createProceduralBackend } from './backends/procedural/index.js';
export { embeddedProvider, embeddedModelsPresent, MODELS_DIR } from './backends/embedded/index.js';
export { registerBuiltinBackends } from './backends/builtin.js';

import { registerBuiltinBackends as registerBuiltins } from './backends/builtin.js';
// the shipped backends are available by name to library users too (onnxruntime loads only when used)
registerBuiltins();
