import { Interrupted, UserError } from '../../core/errors.js';
import { makeOutputDir } from '../../store/dirs.js';
import { openQueue } from '../../queue/connection.js';
import { startWorker, workerName } from '../../queue/worker.js';

export interface WorkerFlags {
  queue?: string;
  concurrency: number;
  stallMs: number;
  quiet?: boolean;
  journal?: string;
}


/**
 * Runs until SIGINT or SIGTERM: then it takes no new job and exits once its jobs are done; a second signal releases
 * the jobs in hand to the queue (another worker resumes each from its journal) and exits 130; a third exits at once.
 */
export async function workerAction(flags: WorkerFlags): Promise<void> {
  if (!flags.queue) throw new UserError('worker needs --queue <redis://host:port>');
  if (flags.journal) makeOutputDir(flags.journal, '--journal folder');
  await (await openQueue(flags.queue)).close(); // one clear line now if Redis is not there, not endless retries
  const log = (line: string) => process.stderr.write(`worker ${line}\n`);
  const worker = startWorker({
    url: flags.queue,
    concurrency: flags.concurrency,
    stallMs: flags.stallMs,
    ...(flags.journal ? { journal: flags.journal } : {}),
    ...(flags.quiet ? {} : { log }),
  });
  await worker.waitUntilReady();
  process.stderr.write(`worker ${workerName()} ready on ${flags.queue}\n`);
  const released = await new Promise<boolean>((resolve) => {
    let signals = 0;
    const stop = () => {
      signals++;
      if (signals === 1) {
        process.stderr.write('worker stopping: finishing the jobs in hand (again to put them back on the queue now)\n');
        void worker.close().then(() => resolve(signals > 1));
      } else if (signals === 2) {
        process.stderr.write('worker stopping now: putting the jobs in hand back on the queue (again to quit at once)\n');
        worker.cancelAllJobs('worker stopping');
        void worker.close().then(() => resolve(signals > 1));
      } else process.exit(130);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  if (released) throw new Interrupted('worker stopped; its jobs went back on the queue');
}
