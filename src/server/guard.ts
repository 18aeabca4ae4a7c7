/**
 * The checks every local HTTP surface of reflectionflow makes before anything else (`serve`, `ui`): the Host header
 * must name this server (DNS rebinding) and a browser's Origin, when sent, must be this server (cross-site posts).
 */
import os from 'node:os';
import type { FastifyInstance } from 'fastify';
import { ApiError, quote } from './errors.js';

export interface GuardOptions {
  /** the bound address */
  host: string;
  /** names clients may use in Host besides the bound address */
  allowedHosts: string[];
  /** the flag that adds a name, for the error message (`serve --allowed-host`) */
  allowFlag?: string;
}

/** Refuse, with a 403, requests whose Host is not this server and cross-origin requests. */
export function guardHostAndOrigin(app: FastifyInstance, options: GuardOptions): void {
  const hostNames = allowedHostNames(options.host, options.allowedHosts);
  app.addHook('onRequest', async (req) => {
    // DNS rebinding: a page of evil.example that resolves to this address still names evil.example in Host
    const hostName = hostNameOf(req.headers.host);
    if (hostName === undefined || !hostNames.has(hostName)) {
      throw new ApiError(
        403,
        `Host ${quote(req.headers.host ?? 'none')} is not this server (allowed: ${[...hostNames].join(', ')}${options.allowFlag ? `; ${options.allowFlag} adds a name` : ''})`,
        'host_not_allowed',
      );
    }
    // browsers send Origin on every cross-origin POST, forms included; other clients send none
    const origin = req.headers.origin;
    if (origin !== undefined && originHost(origin) !== originHost(`http://${req.headers.host}`)) {
      throw new ApiError(403, `cross-origin requests are refused: Origin ${quote(origin)} is not this server`, 'origin_not_allowed');
    }
  });
}

/** 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  const h = normalHost(host);
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(h);
}

function normalHost(name: string): string {
  return name.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
}

/** The host names a Host header may carry: the bound one, loopback names for a loopback or wildcard bind, every local address for a wildcard, and the configured ones. */
function allowedHostNames(host: string, extra: string[]): Set<string> {
  const names = new Set([host, ...extra].map(normalHost));
  const wildcard = host === '0.0.0.0' || host === '::';
  if (wildcard || isLoopback(host)) for (const n of ['localhost', '127.0.0.1', '::1']) names.add(n);
  if (wildcard) for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) names.add(normalHost(a.address));
  names.delete('0.0.0.0');
  names.delete('::');
  return names;
}

/** The host name of a Host header (`127.0.0.1:8089`, `[::1]:8089`), or undefined when it is not one. */
function hostNameOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  try {
    return normalHost(new URL(`http://${header}`).hostname);
  } catch {
    return undefined;
  }
}

/** `host:port` of an origin (the default port left out), or undefined for `null` and other non-URLs. */
function originHost(origin: string): string | undefined {
  try {
    return new URL(origin).host.toLowerCase() || undefined;
  } catch {
    return undefined;
  }
}
