import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { UserError, errorMessage } from '../core/errors.js';
import { registerBuiltinBackends } from '../backends/builtin.js';
import { backendsCommand } from './commands/backends.js';
import { datasetCommand } from './commands/dataset.js';
import { evalCommand } from './commands/eval.js';
import { reportCommand } from './commands/report.js';
import { runCommand } from './commands/run.js';
import { serveCommand } from './commands/serve.js';
import { uiCommand } from './commands/ui.js';
import { workerCommand } from './commands/worker.js';
import { Interrupted, RunIncomplete } from './exits.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function buildProgram(): Command {
  const program = new Command('reflectionflow')
    .description('ReflectionFlow: better images for hard prompts by spending compute at inference time')
    .version(version())
    .showHelpAfterError(false);
  for (const cmd of [runCommand(), evalCommand(), reportCommand(), datasetCommand(), backendsCommand(), serveCommand(), uiCommand(), workerCommand()]) program.addCommand(cmd);
  return program;
}

/**
 * Run the CLI. Exit codes: 0 done; 2 bad input (one line on stderr, nothing written); 3 a run is incomplete (some
 * calls failed, or a role failed the same way from its first calls on; `run --resume` retries them); 130
 * interrupted (the run is resumable); 1 anything else.
 */
export async function main(argv: string[]): Promise<number> {
  registerBuiltinBackends();
  const program = buildProgram();
  const exitOverride = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.configureOutput({ outputError: (str, write) => write(`reflectionflow: ${str.split('\n')[0]!.replace(/^error: /, '').trimEnd()}\n`) });
    for (const sub of cmd.commands) exitOverride(sub);
  };
  exitOverride(program);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version are not errors; commander already printed usage errors as one line
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof UserError) {
      process.stderr.write(`reflectionflow: ${err.message}\n`);
      return 2;
    }
    if (err instanceof Interrupted) {
      process.stderr.write(`reflectionflow: ${err.message}\n`);
      return 130;
    }
    if (err instanceof RunIncomplete) {
      process.stderr.write(`reflectionflow: ${err.message}\n`);
      return 3;
    }
    process.stderr.write(`reflectionflow: ${errorMessage(err)}\n`);
    if (process.env.REFLECTIONFLOW_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
    return 1;
  }
}
