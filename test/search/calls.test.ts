/**
 * The call runner on its own: one event per call, a finished call replayed only for the same inputs, a failed call
 * returned by attempt() and recorded, a role failing the same way stopping the search, one limit per limit group.
 */
import { describe, expect, it } from 'vitest';
import { RoleFailing } from '../../src/core/errors.js';
import { CallFailed, CallRunner, FAIL_FAST_CALLS, type CallSpec } from '../../src/search/calls.js';
import { MemoryIO } from '../../src/search/io.js';

const backend = (concurrency = 4, limitGroup?: object) => ({ name: 'b', concurrency, ...(limitGroup ? { limitGroup } : {}) });
const spec = (key: string, extra: Partial<CallSpec> = {}): CallSpec => ({ key, role: 'verifier', backend: backend(), candidateId: key, inputIds: [key], ...extra });
const asEvent = async (score: number) => ({ evaluation: { score } });
const fromEvent = async (e: { evaluation?: { score: number } }) => e.evaluation!.score;

describe('CallRunner', () => {
  it('records one event per call and replays a finished call instead of making it again', async () => {
    const io = new MemoryIO();
    let made = 0;
    const call = async () => ++made / 10;
    expect(await new CallRunner(io, undefined).run(spec('verify:a'), call, asEvent, fromEvent)).toBe(0.1);
    expect(io.events).toHaveLength(1);
    expect(io.events[0]).toMatchObject({ key: 'verify:a', role: 'verifier', backend: 'b', candidateId: 'verify:a', evaluation: { score: 0.1 } });

    const heard: boolean[] = [];
    const again = new CallRunner(io, undefined, (_e, replayed) => heard.push(replayed));
    expect(await again.run(spec('verify:a'), call, asEvent, fromEvent)).toBe(0.1);
    expect(made).toBe(1);
    expect(heard).toEqual([true]);
    expect(again.usage.verifier).toMatchObject({ calls: 1, failed: 0 }); // a replayed call counts as made
    // other inputs under the same key: made again
    expect(await again.run(spec('verify:a', { inputIds: ['other'] }), call, asEvent, fromEvent)).toBe(0.2);
    expect(made).toBe(2);
  });

  it('attempt returns a failed call as its CallFailed, with the event recorded; the next attempt makes it again', async () => {
    const io = new MemoryIO();
    const runner = new CallRunner(io, undefined);
    const failed = await runner.attempt(spec('verify:a'), () => Promise.reject(new Error('HTTP 500\nbody')), asEvent, fromEvent);
    expect(failed).toBeInstanceOf(CallFailed);
    expect((failed as CallFailed).message).toBe('HTTP 500\nbody');
    expect(io.events).toEqual([expect.objectContaining({ key: 'verify:a', error: 'HTTP 500\nbody' })]);
    expect(runner.failures).toHaveLength(1);
    expect(await runner.attempt(spec('verify:a'), async () => 0.5, asEvent, fromEvent)).toBe(0.5);
  });

  it(`stops the search when a role's first ${FAIL_FAST_CALLS} calls fail the same way, not when one succeeded`, async () => {
    const refuse = () => Promise.reject(new Error('connect ECONNREFUSED\ndetail'));
    const runner = new CallRunner(new MemoryIO(), undefined);
    for (let i = 0; i < FAIL_FAST_CALLS; i++) await runner.attempt(spec(`verify:${i}`), refuse, asEvent, fromEvent);
    expect(runner.signal.aborted).toBe(true);
    expect(runner.signal.reason).toBeInstanceOf(RoleFailing);
    expect((runner.signal.reason as RoleFailing).message).toBe(`every verifier call failed the same way (${FAIL_FAST_CALLS} of ${FAIL_FAST_CALLS}): connect ECONNREFUSED`);
    await expect(runner.run(spec('verify:x'), async () => 1, asEvent, fromEvent)).rejects.toBeInstanceOf(RoleFailing);

    const lucky = new CallRunner(new MemoryIO(), undefined);
    await lucky.run(spec('verify:ok'), async () => 1, asEvent, fromEvent);
    for (let i = 0; i < FAIL_FAST_CALLS; i++) await lucky.attempt(spec(`verify:${i}`), refuse, asEvent, fromEvent);
    expect(lucky.signal.aborted).toBe(false);
  });

  it('roles of one limit group share the first one’s limit; busy time is the union of calls in flight', async () => {
    const group = {};
    const runner = new CallRunner(new MemoryIO(), undefined);
    let inFlight = 0;
    let most = 0;
    const slow = async () => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 20));
      inFlight--;
      return 0.5;
    };
    // the first role object declares 2; the others, declaring 5, share its limit
    const backends = [backend(2, group), backend(5, group), backend(5, group)];
    await Promise.all(Array.from({ length: 6 }, (_, i) => runner.run(spec(`verify:${i}`, { backend: backends[i % 3]! }), slow, asEvent, fromEvent)));
    expect(most).toBe(2);
    expect(runner.busyPerRole.verifier!).toBeLessThan(runner.timePerRole.verifier!);
    expect(runner.busyPerRole.verifier!).toBeGreaterThanOrEqual(3 * 20 - 5);
  });
});
