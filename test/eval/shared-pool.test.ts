/**
 * The eval's shared noise pool on its own: pool images shared by every search of a prompt and seed, pool scores only
 * by searches with the same verifier, a search's later rounds its own; a cache folder keeps pool images across evals;
 * a journal lets a new pool resume a killed one.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CallEvent } from '../../src/search/io.js';
import { SharedPoolIO, type JournalEvent } from '../../src/eval/shared-pool.js';
import { tmpDir } from '../helpers/cli.js';

const png = (b: number) => ({ png: new Uint8Array([b, 1, 2]) });
const event = (key: string, role: CallEvent['role'], candidateId: string, extra: Partial<CallEvent> = {}): CallEvent => ({
  key,
  role,
  backend: 'b',
  inputIds: [],
  candidateId,
  ms: 1,
  at: 'now',
  ...extra,
});

describe('SharedPoolIO', () => {
  it('shares pool images with every session, pool scores only within a verifier scope, later rounds with none', async () => {
    const pool = new SharedPoolIO();
    const a = pool.session('vlm', 'a');
    await a.saveImage('r0-i000-s1', png(7));
    await a.record(event('generate:r0-i000-s1', 'generator', 'r0-i000-s1', { outputId: 'r0-i000-s1' }));
    await a.record(event('verify:r0-i000-s1', 'verifier', 'r0-i000-s1', { evaluation: { score: 0.4 } }));
    await a.saveImage('r1-c0-s9', png(8));
    await a.record(event('correct:r1-c0-s9', 'corrector', 'r1-c0-s9', { outputId: 'r1-c0-s9' }));

    const sameVerifier = pool.session('vlm', 'b');
    const oracle = pool.session('oracle', 'c');
    for (const s of [sameVerifier, oracle]) {
      expect(s.cached('generate:r0-i000-s1')?.outputId).toBe('r0-i000-s1');
      expect((await s.loadImage('r0-i000-s1')).png).toEqual(png(7).png);
      expect(s.cached('correct:r1-c0-s9')).toBeUndefined();
      await expect(s.loadImage('r1-c0-s9')).rejects.toThrow(/not kept/);
    }
    expect(sameVerifier.cached('verify:r0-i000-s1')?.evaluation).toEqual({ score: 0.4 });
    expect(oracle.cached('verify:r0-i000-s1')).toBeUndefined();
    // a failed call is never replayed
    await oracle.record(event('verify:r0-i000-s1', 'verifier', 'r0-i000-s1', { error: 'HTTP 500' }));
    expect(oracle.cached('verify:r0-i000-s1')).toBeUndefined();
  });

  it('keeps pool images in the cache folder for the next eval of the same generator and prompt', async () => {
    const dir = tmpDir();
    const first = new SharedPoolIO({ dir, generatorKey: 'gen:1', prompt: 'a red circle' }).session();
    await first.saveImage('r0-i003-s5', png(3));
    const next = new SharedPoolIO({ dir, generatorKey: 'gen:1', prompt: 'a red circle' }).session();
    expect(next.cached('generate:r0-i003-s5')).toMatchObject({ role: 'generator', backend: 'cache', outputId: 'r0-i003-s5' });
    expect((await next.loadImage('r0-i003-s5')).png).toEqual(png(3).png);
    expect(next.cached('verify:r0-i003-s5')).toBeUndefined(); // scores are not cached across evals
    const other = new SharedPoolIO({ dir, generatorKey: 'gen:2', prompt: 'a red circle' }).session();
    expect(other.cached('generate:r0-i003-s5')).toBeUndefined();
  });

  it('resumes from its journal: pool calls for every session, a session’s own calls for that session', async () => {
    const dir = tmpDir();
    const before = new SharedPoolIO(undefined, { dir, events: [] });
    const s = before.session('vlm', 'reflection\u00008');
    await s.saveImage('r0-i000-s1', png(1));
    await s.record(event('generate:r0-i000-s1', 'generator', 'r0-i000-s1', { outputId: 'r0-i000-s1' }));
    await s.record(event('verify:r0-i000-s1', 'verifier', 'r0-i000-s1', { evaluation: { score: 0.9 } }));
    await s.saveImage('r1-c0-s2', png(2));
    await s.record(event('correct:r1-c0-s2', 'corrector', 'r1-c0-s2', { outputId: 'r1-c0-s2' }));

    const lines = readFileSync(path.join(dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as JournalEvent);
    const after = new SharedPoolIO(undefined, { dir, events: lines });
    const same = after.session('vlm', 'reflection\u00008');
    expect(same.cached('verify:r0-i000-s1')?.evaluation).toEqual({ score: 0.9 });
    expect(same.cached('correct:r1-c0-s2')?.outputId).toBe('r1-c0-s2');
    expect((await same.loadImage('r1-c0-s2')).png).toEqual(png(2).png);
    const otherSession = after.session('vlm', 'noise\u00008');
    expect(otherSession.cached('generate:r0-i000-s1')).toBeDefined();
    expect(otherSession.cached('correct:r1-c0-s2')).toBeUndefined();
  });
});
