import { comfyuiProvider } from './comfyui/index.js';
import { embeddedProvider } from './embedded/index.js';
import { falProvider } from './fal/index.js';
import { geminiProvider } from './gemini/index.js';
import { openaiProvider } from './openai/index.js';
import { proceduralProvider } from './procedural/index.js';
import { registerBackend } from './registry.js';
import { replicateProvider } from './replicate/index.js';

let registered = false;

/** The backends this package ships. */
export function registerBuiltinBackends(): void {
  if (registered) return;
  registered = true;
  registerBackend(embeddedProvider);
  registerBackend(proceduralProvider);
  registerBackend(openaiProvider);
  registerBackend(geminiProvider);
  registerBackend(falProvider);
  registerBackend(comfyuiProvider);
  registerBackend(replicateProvider);
}
