import { Command, Option } from 'commander';
import { BUDGET_LIMIT } from '../../config/limits.js';
import type { SearchParams } from '../../core/types.js';
import { DEFAULT_UI_PORT } from '../../ui/defaults.js';
import { intList, finiteNumber, nonNegativeInt, port, positiveInt, redisUrl, strategy } from '../args.js';

export interface RunFlags {
  strategy?: SearchParams['strategy'];
  budget?: number;
  samples?: number;
  width?: number;
  depth?: number;
  seed?: number;
  maxImages?: number;
  budgetLimit?: number;
  stopAt?: number;
  wave?: number;
  chainHead?: SearchParams['chainHead'];
  backend?: string;
  config?: string;
  out?: string;
  prompts?: string;
  genevalOut?: string;
  genevalRungs?: number[];
  dryRun?: boolean;
  resume?: string;
  report: boolean;
  size?: number;
  quiet?: boolean;
  json?: boolean;
  queue?: string;
  ui?: number | true;
}

export function runCommand(): Command {
  return new Command('run')
    .description('search for the best image for a prompt (or every prompt of a GenEval JSONL file)')
    .argument('[prompt]', 'the text prompt')
    .addOption(new Option('--strategy <name>', 'noise | noise+prompt | reflection (default: reflection if the backends can reflect and correct, else noise+prompt if they can refine, else noise)').argParser(strategy))
    .option('--budget <n>', 'images in all: noise draws n samples; the others half on the pool, half on --width chains (default 2)', positiveInt)
    .option('--samples <n>', 'initial noise pool (default 8); the budget is samples + width × depth for every strategy', positiveInt)
    .option('--width <n>', 'chains kept after the pool (default 2; noise spends them on more samples)', positiveInt)
    .option('--depth <n>', 'refinement rounds per chain (default 4)', nonNegativeInt)
    .option('--seed <n>', 'run seed (default 0)', nonNegativeInt)
    .option('--max-images <n>', 'never generate more images than this', positiveInt)
    .option('--stop-at <score>', "stop once an image's verifier score reaches this (the verifier's scale; the budget stays the cap)", finiteNumber)
    .option('--wave <n>', 'with --stop-at: pool images made between two checks (default 4)', positiveInt)
    .option('--budget-limit <n>', `largest budget a run may plan (images per prompt; default ${BUDGET_LIMIT})`, positiveInt)
    .addOption(new Option('--chain-head <mode>', 'next round starts from the latest image or the best so far').choices(['latest', 'best']))
    .option('--backend <name>', 'backend for every role not set in the config')
    .option('--config <file>', 'config file: ours (JSON/YAML) or the official ReflectionFlow layout')
    .option('--out <dir>', 'parent folder of run directories (default runs)')
    .option('--prompts <file>', 'run every prompt of a GenEval-metadata JSONL file (a batch: runs/batch-…/)')
    .option('--geneval-out <dir>', "with --prompts: also write GenEval's folder layout (<index>/metadata.jsonl, samples/0000.png: the final image) for its official scorer")
    .option('--geneval-rungs <list>', "with --geneval-out: also a GenEval tree per budget rung, nfe<n>/ (the best of the first n images, as the official verifier_filter.py)", intList)
    .option('--size <px>', 'image size asked of the generator', positiveInt)
    .option('--dry-run', 'validate everything and print the plan; run nothing')
    .option('--resume <runDir>', 'continue a run that was interrupted or killed')
    .option('--no-report', 'do not write report.html')
    .option('--quiet', 'no progress output')
    .option('--json', 'print the summary as JSON')
    .option('--ui [port]', `watch the run in the live web view on 127.0.0.1 (default port ${DEFAULT_UI_PORT}); it stays up after the run until Ctrl-C`, port)
    .option('--queue <url>', 'with --prompts (or --resume <batchDir>): one job per prompt on this Redis (redis://host:port) for `reflectionflow worker`s; waits for them', redisUrl)
    .action(async (prompt: string | undefined, flags: RunFlags) => {
      // the run itself (and the backends) loads only now: --help and --version stay quick
      await (await import('../actions/run.js')).runAction(prompt, flags);
    });
}

