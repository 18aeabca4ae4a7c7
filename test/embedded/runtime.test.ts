import { describe, expect, it } from 'vitest';
import { MicroBatcher } from '../../src/backends/embedded/batcher.js';
import { gaussianNoise } from '../../src/backends/embedded/noise.js';
import { Tokenizer } from '../../src/backends/embedded/tokenizer.js';
import { UserError } from '../../src/core/errors.js';
import { shapeWorldVocab } from '../../src/datasets/images.js';
import { testPrompts, trainPrompts } from '../../src/shapeworld/prompts.js';

describe('tokenizer', () => {
  const vocab = shapeWorldVocab();
  const tok = new Tokenizer(vocab, 20);

  it('covers every test prompt and fresh training prompts', () => {
    for (const r of [...testPrompts(), ...trainPrompts({ count: 2000, seed: 99 })]) {
      const ids = tok.encode(r.prompt);
      expect(ids).toHaveLength(20);
      expect(ids.every((id) => id >= 0 && id < vocab.length)).toBe(true);
    }
  });

  it('names unknown words and lists the vocabulary', () => {
    expect(() => tok.encode('a photo of a purple giraffe')).toThrow(UserError);
    expect(() => tok.encode('a photo of a purple giraffe')).toThrow(/'giraffe'.*vocabulary: .*circle/);
  });

  it('pads, and has a null prompt for guidance', () => {
    const ids = tok.encode('a red circle');
    expect(ids.slice(3).every((i) => i === 0)).toBe(true);
    expect(tok.nullTokens()).toEqual([1, ...new Array(19).fill(0)]);
    expect(vocab.slice(0, 2)).toEqual(['<pad>', '<null>']);
  });
});

describe('noise', () => {
  it('is a deterministic standard normal per seed', () => {
    const a = gaussianNoise(7, 3072);
    expect(gaussianNoise(7, 3072)).toEqual(a);
    expect(gaussianNoise(8, 3072)).not.toEqual(a);
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const variance = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
    expect(Math.abs(mean)).toBeLessThan(0.06);
    expect(Math.abs(variance - 1)).toBeLessThan(0.08);
  });
});

/** A batcher whose batches take `ms` and answer each request with itself, and the batches it ran. */
function recordingBatcher(maxBatch: number, ms: number, windowMs: number) {
  const batches: number[][] = [];
  const b = new MicroBatcher<number, number>(
    maxBatch,
    async (xs) => {
      batches.push(xs);
      await new Promise((r) => setTimeout(r, ms));
      return xs;
    },
    windowMs,
  );
  return { b, batches };
}

describe('MicroBatcher', () => {
  it('batches requests of one turn, keeps each answer with its request, and respects the batch cap', async () => {
    const sizes: number[] = [];
    const b = new MicroBatcher<number, number>(4, async (xs) => {
      sizes.push(xs.length);
      await new Promise((r) => setTimeout(r, Math.random() * 5));
      return xs.map((x) => x * 10);
    });
    const out = await Promise.all(Array.from({ length: 10 }, (_, i) => b.submit(i)));
    expect(out).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    expect(sizes).toEqual([4, 4, 2]);
  });

  it('fails every request of a failed batch, and later batches still run', async () => {
    let calls = 0;
    const b = new MicroBatcher<number, number>(8, async (xs) => {
      calls++;
      if (calls === 1) throw new Error('boom');
      return xs;
    });
    await expect(Promise.all([b.submit(1), b.submit(2)])).rejects.toThrow('boom');
    await expect(b.submit(3)).resolves.toBe(3);
  });

  it('a request aborted while it waits leaves the queue: its batch is made without it', async () => {
    const batches: number[][] = [];
    const b = new MicroBatcher<number, number>(4, async (xs) => {
      batches.push(xs);
      await new Promise((r) => setTimeout(r, 30));
      return xs;
    });
    const first = b.submit(0);
    await new Promise((r) => setImmediate(r)); // the first batch is running
    const controllers = [1, 2, 3].map(() => new AbortController());
    const waiting = [1, 2, 3].map((x, i) => b.submit(x, controllers[i]!.signal));
    controllers[0]!.abort(new Error('gone'));
    controllers[2]!.abort(new Error('gone'));
    const settled = await Promise.allSettled(waiting);
    expect(settled.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'rejected']);
    expect((settled[0] as PromiseRejectedResult).reason.message).toBe('gone');
    await expect(first).resolves.toBe(0);
    expect(batches).toEqual([[0], [2]]);
    const late = new AbortController();
    late.abort(new Error('already gone'));
    await expect(b.submit(9, late.signal)).rejects.toThrow('already gone');
    expect(batches).toHaveLength(2);
  });

  it('with a window, clients that answer a result with their next request share the next batch instead of trailing it', async () => {
    const runs = async (windowMs: number) => {
      const { b, batches } = recordingBatcher(4, 10, windowMs);
      // four clients, each sending its next request a few ms after its answer (as over a socket)
      const client = async (k: number) => {
        for (let round = 0; round < 3; round++) {
          await b.submit(10 * round + k);
          await new Promise((r) => setTimeout(r, 2 + 20 * k));
        }
      };
      const started = performance.now();
      await Promise.all([0, 1, 2, 3].map(client));
      return { batches, ms: performance.now() - started };
    };
    const eager = await runs(0);
    expect(eager.batches.length).toBeGreaterThan(3);
    // the window ends as soon as the queue fills a batch: no 10 s wait
    const windowed = await runs(10_000);
    expect(windowed.batches).toEqual([
      [0, 1, 2, 3],
      [10, 11, 12, 13],
      [20, 21, 22, 23],
    ]);
    expect(windowed.ms).toBeLessThan(5_000);
  });

  it('a window that does not fill runs what it has; one whose requests all left ends, and the batcher still takes new ones', async () => {
    const { b, batches } = recordingBatcher(8, 20, 30);
    const first = b.submit(1);
    await new Promise((r) => setTimeout(r, 40)); // the first batch has waited out its window and is running
    const leaving = new AbortController();
    const gone = b.submit(2, leaving.signal);
    const second = b.submit(3);
    await expect(first).resolves.toBe(1);
    await expect(second).resolves.toBe(3);
    expect(batches).toEqual([[1], [2, 3]]);
    await expect(gone).resolves.toBe(2);

    await new Promise((r) => setTimeout(r, 60)); // an idle spell
    const alone = new AbortController();
    const third = b.submit(4);
    const dropped = b.submit(5, alone.signal);
    alone.abort(new Error('gone')); // during the window
    await expect(dropped).rejects.toThrow('gone');
    await expect(third).resolves.toBe(4);
    const leaves = new AbortController();
    const last = b.submit(6, leaves.signal);
    leaves.abort(new Error('gone')); // the window ends with nothing to run
    await expect(last).rejects.toThrow('gone');
    await new Promise((r) => setTimeout(r, 60));
    await expect(b.submit(7)).resolves.toBe(7);
    expect(batches).toEqual([[1], [2, 3], [4], [7]]);
  });

  it('after an idle spell, requests sent a few ms apart share one batch (a search\'s chains, each after its own decode)', async () => {
    const { b, batches } = recordingBatcher(4, 5, 200);
    await new Promise((r) => setTimeout(r, 30)); // idle
    const first = b.submit(1);
    await new Promise((r) => setTimeout(r, 3));
    await Promise.all([first, b.submit(2)]);
    expect(batches).toEqual([[1, 2]]);
  });

  it('a running batch gets its requests’ signals and may leave an aborted one without a result; a live one without a result fails', async () => {
    const gone = new AbortController();
    const seen: boolean[][] = [];
    const b = new MicroBatcher<number, number>(4, async (xs, signals) => {
      seen.push(signals.map((s) => s !== undefined));
      gone.abort(new Error('gone')); // during the batch
      return xs.map((x, i) => (signals[i]?.aborted || x === 3 ? undefined : x));
    });
    const settled = await Promise.allSettled([b.submit(1), b.submit(2, gone.signal), b.submit(3)]);
    expect(seen).toEqual([[false, true, false]]);
    expect(settled.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([
      1,
      'gone',
      'the batch gave no result for a request that was not aborted',
    ]);
  });
});
