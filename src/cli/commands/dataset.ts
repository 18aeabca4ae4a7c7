import { Command, InvalidArgumentError } from 'commander';
import { UserError } from '../../core/errors.js';
import { promptsToJsonl, splitPrompts, writePromptsJsonl, type SplitName } from '../../shapeworld/prompts.js';

function intArg(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    }
    return n;
  };
}

/** `reflectionflow dataset prompts --split test|train [--count N] [--seed S] [--out file]` */
export function datasetCommand(): Command {
  const dataset = new Command('dataset').description('ShapeWorld datasets');
  dataset
    .command('prompts')
    .description('write a ShapeWorld prompt split as GenEval metadata JSONL (stdout unless --out)')
    .requiredOption('--split <split>', 'test (the benchmark) or train (paraphrased training prompts)')
    .option('--count <n>', 'training prompts to write (train only)', intArg('--count', 1), 1000)
    .option('--seed <s>', 'training sampler seed (train only)', intArg('--seed', 0), 0)
    .option('--out <file>', 'write to this file instead of stdout')
    .action(async (opts: { split: string; count: number; seed: number; out?: string }) => {
      if (opts.split !== 'test' && opts.split !== 'train') {
        throw new UserError(`unknown split '${opts.split}' (splits: test, train)`);
      }
      const split = opts.split as SplitName;
      if (opts.out) {
        const n = await writePromptsJsonl(split, opts.out, { count: opts.count, seed: opts.seed });
        process.stderr.write(`wrote ${n} ${split} prompts to ${opts.out}\n`);
      } else {
        process.stdout.write(promptsToJsonl(splitPrompts(split, { count: opts.count, seed: opts.seed })));
      }
    });
  return dataset;
}
