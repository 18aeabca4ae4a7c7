/** The flow models' default batch window: a client's next request reaches the server well within it on loopback. */
export const FLOW_BATCH_WINDOW_MS = 20;

/**
 * The perception's and the verifier's batch window: a round's images reach them a few ms apart (each after its own
 * PNG decode), and a pass takes about as long, so without one a search's chains drift into batches of one — and
 * so do their corrections after them.
 */
export const SCORE_BATCH_WINDOW_MS = 5;

/** Calls an embedded role takes at once by default: enough to fill the batches of a search's waves. */
export const EMBEDDED_CONCURRENCY = 64;

interface Entry<Req, Res> {
  req: Req;
  /** when it was queued (performance.now()) */
  at: number;
  resolve: (r: Res) => void;
  reject: (e: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/**
 * Collects requests and runs them as batches: the search issues one call per candidate, the model is much faster
 * per image on a batch. Requests made in one turn of the event loop go together; batches run one after another
 * (the model uses every core for each), and the next batch is taken from the queue when the previous one ends, so
 * a request whose signal aborts while it waits leaves the queue and is never computed. A running batch gets its
 * requests' signals: it may stop computing a request whose signal aborts and give it no result (undefined).
 *
 * `windowMs`: a batch with fewer than `maxBatch` requests waits for more until `windowMs` after the later of the
 * previous batch's end and its first request's arrival (a serving batcher's queue delay); a full queue starts it at
 * once. Clients that answer a result with their next request then share a batch instead of trailing it by one,
 * requests sent a few ms apart after an idle spell share one too (a search's chains, each call after its own image
 * decode), and a client that hangs up right after sending is more often gone before its batch starts.
 */
export class MicroBatcher<Req, Res> {
  private queue: Array<Entry<Req, Res>> = [];
  private draining = false;
  /** ends the current window early (the queue filled a batch) */
  private windowFull?: () => void;
  /** when the last batch ended (performance.now()) */
  private lastEnd = -Infinity;

  constructor(
    private readonly maxBatch: number,
    private readonly runBatch: (reqs: Req[], signals: Array<AbortSignal | undefined>) => Promise<Array<Res | undefined>>,
    private readonly windowMs = 0,
  ) {}

  /** Queue one request; an abort of `signal` before its batch starts takes it out (rejecting with the reason). */
  submit(req: Req, signal?: AbortSignal): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const entry: Entry<Req, Res> = { req, at: performance.now(), resolve, reject };
      if (signal) {
        entry.signal = signal;
        entry.onAbort = () => {
          const at = this.queue.indexOf(entry);
          if (at >= 0) this.queue.splice(at, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.queue.push(entry);
      if (this.queue.length >= this.maxBatch) this.windowFull?.();
      if (!this.draining) {
        this.draining = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length) {
      const wait = Math.max(this.lastEnd, this.queue[0]!.at) + this.windowMs - performance.now();
      if (wait > 0 && this.queue.length < this.maxBatch) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, wait);
          this.windowFull = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.windowFull = undefined;
        // everything queued may have been aborted meanwhile
        if (!this.queue.length) break;
      }
      const batch = this.queue.splice(0, this.maxBatch);
      try {
        const results = await this.runBatch(
          batch.map((b) => b.req),
          batch.map((b) => b.signal),
        );
        batch.forEach((b, i) => {
          const result = results[i];
          // an aborted request was rejected when its signal fired
          if (result !== undefined) b.resolve(result);
          else if (!b.signal?.aborted) b.reject(new Error('the batch gave no result for a request that was not aborted'));
        });
      } catch (err) {
        for (const b of batch) b.reject(err);
      } finally {
        for (const b of batch) if (b.onAbort) b.signal!.removeEventListener('abort', b.onAbort);
        this.lastEnd = performance.now();
      }
    }
    this.draining = false;
  }
}
