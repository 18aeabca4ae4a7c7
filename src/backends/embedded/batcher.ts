/**
 * Collects requests made in the same turn of the event loop and runs them as one batch: the search issues one
 * call per candidate, the model is much faster per image on a batch.
 */
export class MicroBatcher<Req, Res> {
  private queue: Array<{ req: Req; resolve: (r: Res) => void; reject: (e: unknown) => void }> = [];
  private scheduled = false;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly maxBatch: number,
    private readonly runBatch: (reqs: Req[]) => Promise<Res[]>,
  ) {}

  submit(req: Req): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    while (this.queue.length) {
      const batch = this.queue.splice(0, this.maxBatch);
      // batches run one after another: the model uses every core for each
      this.running = this.running.then(async () => {
        try {
          const results = await this.runBatch(batch.map((b) => b.req));
          batch.forEach((b, i) => b.resolve(results[i]!));
        } catch (err) {
          for (const b of batch) b.reject(err);
        }
      });
    }
  }
}
