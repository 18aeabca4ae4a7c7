import OpenAI from 'openai';
import { createProceduralBackend } from '../../src/backends/procedural/index.js';
import type { RoleSet } from '../../src/core/roles.js';
import { startServer, type RunningServer, type ServerOptions } from '../../src/server/server.js';

/** A server on 127.0.0.1 and a free port over the given roles (default: the five procedural roles). */
export async function serve(roles: Partial<RoleSet> = createProceduralBackend(), extra: Partial<ServerOptions> = {}): Promise<RunningServer> {
  return startServer({ roles, host: '127.0.0.1', port: 0, ...extra });
}

export function sdk(server: RunningServer, apiKey = 'test'): OpenAI {
  return new OpenAI({ baseURL: server.url, apiKey, maxRetries: 0 });
}

/** A raw request to the server; the answer's status and parsed JSON body. */
export async function raw(server: RunningServer, path: string, init: RequestInit = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${server.url}${path}`, init);
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body, headers: res.headers };
}

export function postJson(server: RunningServer, path: string, body: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  return raw(server, path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** Expect an OpenAI-style error body. */
export function isApiError(body: any): boolean {
  return (
    !!body &&
    typeof body.error === 'object' &&
    typeof body.error.message === 'string' &&
    body.error.message.length > 0 &&
    typeof body.error.type === 'string' &&
    'param' in body.error &&
    'code' in body.error
  );
}

export const bytes = (png: Uint8Array): Buffer => Buffer.from(png.buffer, png.byteOffset, png.byteLength);
