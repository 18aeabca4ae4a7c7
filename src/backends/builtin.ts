import { comfyuiProvider } from './comfyui/provider.js';
import { embeddedProvider } from './embedded/index.js';
import { falProvider } from './fal/provider.js';
import { geminiProvider } from './gemini/provider.js';
import { openaiProvider } from './openai/provider.js';
import { proceduralProvider } from './procedural/provider.js';
import { registerBackend } from './registry.js';
import { replicateProvider } from './replicate/provider.js';

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
