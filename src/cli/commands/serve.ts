import { Command, InvalidArgumentError } from 'commander';
import { port } from '../args.js';
import { DEFAULT_HOST, DEFAULT_MAX_PIXELS, DEFAULT_MAX_QUEUED, DEFAULT_PORT } from '../../server/defaults.js';
import type { ServeFlags } from '../actions/serve.js';

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
      await (await import('../actions/serve.js')).serveAction(flags);
    });
}
