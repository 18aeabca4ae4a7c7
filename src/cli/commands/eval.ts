import { Command, Option } from 'commander';
import { intList, nonNegativeInt, numberList, positiveInt, redisUrl } from '../args.js';
import type { EvalFlags } from '../actions/eval.js';

export function evalCommand(): Command {
  return new Command('eval')
    .description('benchmark strategies × budgets on a prompt set, judged by the ShapeWorld evaluator or a judge backend')
    .option('--prompts <file>', 'GenEval metadata JSONL with ShapeWorld classes, or a free-form list (one prompt a line, or JSONL {"prompt", "category"?}) for --judge')
    .option('--judge <backend>', "judge each final image with this backend's verifier (options: the config's \"judge\"), apart from the search's; needed for free-form prompts")
    .option('--self-judge', "allow the judge to be the search's own verifier")
    .option('--split <name>', 'a built-in prompt set: test (GenEval-Shapes) or compositional (the check set beyond GenEval)')
    .option('--strategies <list>', 'comma-separated: noise, noise+prompt, reflection; <strategy>@oracle verifies with the ShapeWorld evaluator', 'noise')
    .option('--strategy <list>', 'alias of --strategies')
    .option('--budgets <list>', 'comma-separated budgets (images per search)', intList, [1, 2, 4, 8, 16, 32])
    .option('--backend <name>', 'backend for every role not set in the config')
    .option('--config <file>', 'config file (ours or the official layout)')
    .option('--stop-at <scores>', "comma-separated verifier scores: each strategy also runs stopping once an image reaches one (the budget is the cap); the table adds images per search", numberList)
    .option('--oracle', 'verify with the ShapeWorld evaluator itself (the ceiling), not the configured verifier')
    .option('--seeds <n>', 'searches per prompt (default: enough for ≥ 80 judged images per category)', positiveInt)
    .option('--width <n>', 'chains for noise+prompt and reflection', positiveInt, 2)
    .option('--seed <n>', 'base seed', nonNegativeInt, 0)
    .option('--jobs <n>', 'prompts searched at once', positiveInt, 4)
    .addOption(new Option('--chain-head <mode>', 'next round starts from the latest image or the best so far').choices(['latest', 'best']).default('latest'))
    .option('--limit <n>', 'only the first N prompts of each category (quick looks)', positiveInt)
    .option('--out <dir>', 'where the results folder goes', 'evals')
    .option('--cache <dir>', 'keep noise-pool images here across eval runs (needs a generator with an identity)')
    .option('--auc', "also judge every image of the largest noise pool and report the verifier's ROC-AUC")
    .option('--quiet', 'no progress output')
    .option('--queue <url>', 'enqueue one job per prompt and seed (all strategies on one noise pool) on this Redis (redis://host:port) for `reflectionflow worker`s, and wait for them', redisUrl)
    .action(async (flags: EvalFlags & { strategy?: string }) => {
      await (await import('../actions/eval.js')).evalAction({ ...flags, strategies: flags.strategy ?? flags.strategies });
    });
}
