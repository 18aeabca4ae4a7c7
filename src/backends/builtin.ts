import { embeddedProvider } from './embedded/index.js';
import { proceduralProvider } from './procedural/index.js';
import { registerBackend } from './registry.js';

let registered = false;

/** The backends this package ships. */
export function registerBuiltinBackends(): void {
  if (registered) return;
  registered = true;
  registerBackend(embeddedProvider);
  registerBackend(proceduralProvider);
}
