import { Command, InvalidArgumentError } from 'commander';
import { port } from '../args.js';
import { untilSignal } from '../until-signal.js';
import { loadConfigFile } from '../../config/load.js';
import type { ConfigFile } from '../../config/schema.js';
import { UserError } from '../../core/errors.js';
import { resolveServedRoles } from '../../server/roles.js';
import { isLoopback } from '../../server/guard.js';
import { DEFAULT_HOST, DEFAULT_MAX_PIXELS, DEFAULT_MAX_QUEUED, DEFAULT_PORT, startServer } from '../../server/server.js';

interface ServeFlags {
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

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function positiveInt(value: string): number {
  if (!/^\s*\d+\s*$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) throw new InvalidArgumentError(`expected a positive whole number, got '${value}'`);
  return Number(value);
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('serve the roles as an OpenAI-compatible HTTP API (models, images generations/edits, chat completions)')
    .option('--backend <name>', 'backend for every role not set in the config (default: the embedded models)')
    .option('--config <file>', 'config file (backends and options per role, as for run)')
    .option('--host <host>', 'address to bind', DEFAULT_HOST)
    .option('--port <port>', 'port (0 picks a free one)', port, DEFAULT_PORT)
    .option('--api-key-env <VAR>', 'require Authorization: Bearer $VAR on every request')
    .option('--allow-unauthenticated', 'let a --host other than loopback serve without --api-key-env (anyone who reaches it can use it)')
    .option('--allowed-host <name>', 'a host name clients may use in Host besides the bound address (repeatable; e.g. behind a proxy)', collect, [])
    .option('--max-pixels <n>', 'most pixels (n × width × height) one images request may ask for', positiveInt, DEFAULT_MAX_PIXELS)
    .option('--max-queue <n>', 'most calls per model running or waiting; a request past it gets 429 with Retry-After', positiveInt, DEFAULT_MAX_QUEUED)
    .option('--quiet', 'no request log on stderr')
    .action(async (flags: ServeFlags) => {
      await serveAction(flags);
    });
}

async function serveAction(flags: ServeFlags): Promise<void> {
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
