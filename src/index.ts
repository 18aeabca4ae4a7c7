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
