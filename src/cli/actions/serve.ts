import { untilSignal } from '../until-signal.js';
import { loadConfigFile } from '../../config/load.js';
import type { ConfigFile } from '../../config/schema.js';
import { UserError } from '../../core/errors.js';
import { resolveServedRoles } from '../../server/roles.js';
import { isLoopback } from '../../server/guard.js';
import { startServer } from '../../server/server.js';

export interface ServeFlags {
  backend?: string;
  config?: string;
  host: string;
  port: number;
  apiKeyEnv?: string;
  allowUnauthenticated?: boolean;
  allowedHost: string[];
  maxPixels: number;
  maxQueue: number;
  quiet?: boolean;
}


export async function serveAction(flags: ServeFlags): Promise<void> {
  const config: ConfigFile = flags.config ? loadConfigFile(flags.config).config : {};
  if (flags.backend) config.backend = flags.backend;
  let apiKey: string | undefined;
  if (flags.apiKeyEnv !== undefined) {
    apiKey = process.env[flags.apiKeyEnv];
    if (!apiKey) throw new UserError(`--api-key-env ${flags.apiKeyEnv}: the environment variable is not set`);
  }
  if (!apiKey && !isLoopback(flags.host) && !flags.allowUnauthenticated) {
    throw new UserError(`--host ${flags.host} is reachable from other machines: give --api-key-env VAR, or --allow-unauthenticated to serve anyone who reaches it`);
  }
  const roles = await resolveServedRoles(config);
  const server = await startServer({
    roles,
    host: flags.host,
    port: flags.port,
    allowedHosts: flags.allowedHost,
    maxPixelsPerRequest: flags.maxPixels,
    maxQueuedCalls: flags.maxQueue,
    ...(apiKey ? { apiKey } : {}),
    ...(flags.quiet ? {} : { log: (line: string) => process.stderr.write(`${line}\n`) }),
  });
  process.stdout.write(`${server.url}\n`);
  process.stderr.write(`serving ${server.models.map((m) => `${m.id} (${m.backend})`).join(', ')}${apiKey ? '; bearer key required' : ''}\n`);
  if (!apiKey && !isLoopback(flags.host)) {
    process.stderr.write(`warning: listening on ${flags.host} without a key (--allow-unauthenticated): anyone who can reach it can use it\n`);
  }
  await untilSignal(() => server.close());
}
