import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { UserError, errorMessage } from '../core/errors.js';
import type { RoleSet } from '../core/roles.js';

import type { Role } from '../core/strategies.js';
export { ROLES, type Role } from '../core/strategies.js';

/**
 * A backend family: one name, a factory that makes the roles it serves from options. Options come from the
 * config file, never secrets: adapters read API keys from the environment themselves.
 */
export interface BackendProvider {
  name: string;
  description: string;
  /** the roles it can serve */
  roles: readonly Role[];
  create(options: Record<string, unknown>): Partial<RoleSet> | Promise<Partial<RoleSet>>;
  /** the checks its `roles` will make of a run's input, made before `create` (which may load models) */
  inputCheck?(options: Record<string, unknown>, roles: readonly Role[]): InputCheck;
}

/** Checks of a run's input that throw a UserError for what the roles would refuse. */
export interface InputCheck {
  prompt?(prompt: string): void;
  size?(size: number): void;
}

const providers = new Map<string, BackendProvider>();

export function registerBackend(provider: BackendProvider): void {
  providers.set(provider.name, provider);
}

export function listBackends(): BackendProvider[] {
  return [...providers.values()];
}

/** `module:./x.mjs` → `module:/abs/x.mjs`, so a run resumed from another folder finds it. */
export function absoluteBackendName(name: string): string {
  return name.startsWith('module:') ? `module:${path.resolve(name.slice('module:'.length))}` : name;
}

export function getBackend(name: string): BackendProvider | undefined {
  return providers.get(name);
}

/** The provider of a backend name, or null for a `module:` backend; a UserError for a name nobody registered. */
export function providerOf(name: string): BackendProvider | null {
  if (name.startsWith('module:')) return null;
  const provider = providers.get(name);
  if (!provider) throw new UserError(`unknown backend '${name}' (known: ${[...providers.keys(), 'module:<path>'].join(', ')})`);
  return provider;
}

/**
 * Resolve a backend by name. `module:<path>` loads a user's ES module whose default export (or `createBackend`)
 * takes options and returns roles — the way to plug in a backend this package does not ship.
 */
export async function createBackend(name: string, options: Record<string, unknown>): Promise<Partial<RoleSet>> {
  const provider = providerOf(name);
  return provider ? provider.create(options) : loadModuleBackend(name.slice('module:'.length), options);
}

async function loadModuleBackend(file: string, options: Record<string, unknown>): Promise<Partial<RoleSet>> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path.resolve(file)).href)) as Record<string, unknown>;
  } catch (err) {
    throw new UserError(`cannot load backend module ${file}: ${errorMessage(err).split('\n')[0]}`);
  }
  const factory = (mod.createBackend ?? mod.default) as unknown;
  if (typeof factory !== 'function') {
    throw new UserError(`backend module ${file} exports no createBackend function (or default export)`);
  }
  return (await factory(options)) as Partial<RoleSet>;
}
