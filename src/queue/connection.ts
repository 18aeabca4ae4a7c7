import { Queue } from 'bullmq';

/** Every job of every eval and batch goes through one queue; a job's data says what it is. */
export const QUEUE_NAME = 'reflectionflow';

/**
 * BullMQ connection options for a `redis://` URL. Commands wait for a lost connection to come back instead of
 * failing (`maxRetriesPerRequest: null`), so that a Redis restart pauses the workers and the eval, and nothing fails.
 */
export function connectionOf(url: string) {
  return { url, maxRetriesPerRequest: null, enableOfflineQueue: true, retryStrategy: (times: number) => Math.min(200 * times, 2000) };
}

/** The queue, once Redis answered; an Error naming the URL when it does not within `timeoutMs`. */
export async function openQueue(url: string, timeoutMs = 5000): Promise<Queue> {
  const queue = new Queue(QUEUE_NAME, { connection: connectionOf(url) });
  queue.on('error', () => {}); // reconnects are logged by whoever waits on the queue, not once per retry
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      queue.waitUntilReady().then(() => queue.getJobCounts('wait')),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`cannot reach Redis at ${url} (no answer in ${timeoutMs / 1000}s)`)), timeoutMs))),
    ]);
  } catch (err) {
    await queue.close().catch(() => {});
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return queue;
}
