import { Command } from 'commander';
import { DEFAULT_UI_PORT } from '../../ui/defaults.js';
import { port } from '../args.js';
import { untilSignal } from '../until-signal.js';

interface UiFlags {
  port: number;
  runs: string;
  evals: string;
  configs?: string;
}

export function uiCommand(): Command {
  return new Command('ui')
    .description('a live web view on 127.0.0.1: watch runs as they happen, start, cancel and resume them, compare two, read eval results')
    .option('--port <port>', 'port (0 picks a free one)', port, DEFAULT_UI_PORT)
    .option('--runs <dir>', 'the runs folder it shows and starts runs in', 'runs')
    .option('--evals <dir>', 'folder of eval results (eval-…/results.json)', 'evals')
    .option('--configs <dir>', 'folder of config files (*.json, *.yaml) the new-run form offers')
    .action(async (flags: UiFlags) => {
      const { startUi } = await import('../../ui/server.js');
      const ui = await startUi({
        runs: flags.runs,
        evals: flags.evals,
        port: flags.port,
        ...(flags.configs ? { configs: flags.configs } : {}),
        log: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(`${ui.url}\n`);
      await untilSignal(() => ui.close());
    });
}

