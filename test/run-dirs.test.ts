import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UserError } from '../src/core/errors.js';
import { RunStore } from '../src/store/run-store.js';
import { tmpDir } from './helpers/cli.js';

// every run id drawn alike: the same second, the same prompt and the same "random" suffix
vi.mock('node:crypto', async (original) => ({ ...(await original<typeof import('node:crypto')>()), randomBytes: (n: number) => Buffer.alloc(n) }));

const init = { prompt: 'a red circle', params: { strategy: 'noise' as const, samples: 1, width: 1, depth: 0, seed: 0, chainHead: 'latest' as const }, config: null, backends: {} };

describe('run directories', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('are never reused: a second run whose id is taken gets a new one or is refused, never the first one’s folder', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-01-01T12:00:00Z'));
    const parent = tmpDir();
    const first = await RunStore.create(parent, init);
    await expect(RunStore.create(parent, { ...init, prompt: 'a red circle' })).rejects.toThrow(UserError);
    await first.close();
    expect(readdirSync(parent)).toEqual([path.basename(first.dir)]);
    expect(JSON.parse(readFileSync(path.join(first.dir, 'run.json'), 'utf8')).id).toBe(path.basename(first.dir));
    expect(existsSync(path.join(first.dir, '.lock'))).toBe(false);
  });
});
