import { Command } from 'commander';
import { positiveInt, redisUrl } from '../args.js';
import type { WorkerFlags } from '../actions/worker.js';

export function workerCommand(): Command {
  return new Command('worker')
    .description('run the jobs of `eval --queue` and `run --prompts --queue` (any number of workers, on any machine; a batch needs its folder shared)')
    .option('--queue <url>', 'the Redis the jobs are on, e.g. redis://127.0.0.1:6379', redisUrl)
    .option('--concurrency <n>', 'jobs at once', positiveInt, 1)
    .option('--stall-ms <ms>', "how long a job waits for a worker that stopped answering (killed, hung) before another worker takes it", positiveInt, 30_000)
    .option('--journal <dir>', "keep eval jobs' journals here, when this machine does not share the eval's folder (results travel through Redis)")
    .option('--quiet', 'no line per job')
    .action(async (flags: WorkerFlags) => {
      await (await import('../actions/worker.js')).workerAction(flags);
    });
}
