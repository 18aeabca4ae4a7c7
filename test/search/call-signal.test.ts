import { describe, expect, it } from 'vitest';
import { CallRunner } from '../../src/search/calls.js';
import { MemoryIO } from '../../src/search/io.js';

describe("the call runner's signal", () => {
  it('takes a listener per call in flight without a MaxListenersExceededWarning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const outer = new AbortController();
      const runner = new CallRunner(new MemoryIO(), outer.signal);
      // a batched embedded model listens once per queued request: a budget of 64 is 64 listeners at once
      const aborted: number[] = [];
      for (let i = 0; i < 64; i++) runner.signal.addEventListener('abort', () => aborted.push(i), { once: true });
      outer.abort(new Error('stop'));
      await new Promise((r) => setImmediate(r));
      expect(aborted).toHaveLength(64);
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });
});
