/**
 * The run directory on disk: an old run (roles spelled by their verb) still resumes, a torn last event line is
 * dropped and cut off, a run directory is locked while open, an invalid run.json is refused with its reason.
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.js';
import { resumeSearch, runSearch } from '../../src/run.js';
import { readEvents, readRunRecord, RunStore } from '../../src/store/run-store.js';
import { createBackend } from '../fixtures/fake-backend.mjs';
import { tmpDir } from '../helpers/cli.js';

const VERB: Record<string, string> = { generator: 'generate', verifier: 'verify', reflector: 'reflect', refiner: 'refine', corrector: 'correct' };
const byVerb = (map: Record<string, unknown>) => Object.fromEntries(Object.entries(map).map(([k, v]) => [VERB[k] ?? k, v]));

async function reflectionRun() {
  const backend = createBackend();
  const outcome = await runSearch({
    prompt: 'a red circle',
    params: { strategy: 'reflection', samples: 4, width: 2, depth: 2, seed: 3, chainHead: 'latest' },
    roles: backend,
    outDir: tmpDir(),
    report: false,
  });
  return outcome;
}

describe('run store', () => {
  it('resumes a run written with the old role spelling: its calls are replayed, not made again', async () => {
    const first = await reflectionRun();
    const runFile = path.join(first.dir, 'run.json');
    const eventsFile = path.join(first.dir, 'events.jsonl');
    const run = JSON.parse(readFileSync(runFile, 'utf8'));
    const events = readFileSync(eventsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(events.some((e) => e.role === 'generate')).toBe(false); // written in today's spelling
    // what an older version wrote: verbs for roles, and the run stopped before its last round
    const old = events.filter((e) => !e.candidateId.startsWith('r2-'));
    writeFileSync(eventsFile, old.map((e) => JSON.stringify({ ...e, role: VERB[e.role] })).join('\n') + '\n');
    const { result: _dropped, ...unfinished } = run;
    writeFileSync(runFile, JSON.stringify({ ...unfinished, status: 'interrupted', backends: byVerb(run.backends) }));

    expect((await readRunRecord(first.dir)).backends).toEqual(run.backends);
    expect(new Set((await readEvents(eventsFile)).map((e) => e.role))).toEqual(new Set(['generator', 'verifier', 'reflector', 'refiner', 'corrector']));

    const backend = createBackend();
    const resumed = await resumeSearch(first.dir, { roles: backend, report: false });
    // only the last round's calls are made: 2 corrections, their 2 verifications
    expect(backend.stats.calls).toEqual({ correct: 2, verify: 2 });
    expect(resumed.candidates.map((c) => [c.id, c.evaluation?.score])).toEqual(first.candidates.map((c) => [c.id, c.evaluation?.score]));
    const after = JSON.parse(readFileSync(runFile, 'utf8'));
    expect(after.backends).toEqual(run.backends);
    const calls = (usage: Record<string, { calls: number }>) => Object.fromEntries(Object.entries(usage).map(([role, u]) => [role, u.calls]));
    expect(calls(after.result.usage)).toEqual(calls(run.result.usage));
  });

  it('drops a torn last event line, and cuts it off when repairing', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'events.jsonl');
    const event = { key: 'verify:r0-i00-s1', role: 'verifier', backend: 'b', inputIds: ['r0-i00-s1'], candidateId: 'r0-i00-s1', ms: 1, at: 'now' };
    writeFileSync(file, JSON.stringify(event) + '\n');
    appendFileSync(file, '{"key":"verify:r0-i01');
    expect(await readEvents(file)).toEqual([event]);
    expect(readFileSync(file, 'utf8')).toContain('r0-i01');
    expect(await readEvents(file, true)).toEqual([event]);
    expect(readFileSync(file, 'utf8')).toBe(JSON.stringify(event) + '\n');
    writeFileSync(file, 'not json\n');
    await expect(readEvents(file)).rejects.toThrow(/line 1 is not valid JSON/);
  });

  it('locks a run directory while it is open', async () => {
    const store = await RunStore.create(tmpDir(), { prompt: 'a red circle', params: { strategy: 'noise', samples: 1, width: 1, depth: 0, seed: 1, chainHead: 'latest' }, config: null, backends: {} });
    await expect(RunStore.open(store.dir)).rejects.toThrow(/already open in this process/);
    await store.close();
    const again = await RunStore.open(store.dir);
    expect(again.run.id).toBe(store.run.id);
    await again.close();
  });

  it('refuses a run.json that is not a run record, naming what is missing', async () => {
    const dir = tmpDir();
    await expect(readRunRecord(dir)).rejects.toThrow(/no such file \(is this a run directory\?\)/);
    writeFileSync(path.join(dir, 'run.json'), JSON.stringify({ version: 1, id: 'x', prompt: 'p', params: {} }));
    await expect(readRunRecord(dir)).rejects.toThrow(UserError);
    await expect(readRunRecord(dir)).rejects.toThrow(/missing "candidates"/);
    writeFileSync(path.join(dir, 'run.json'), '{');
    await expect(readRunRecord(dir)).rejects.toThrow(/is not valid JSON/);
  });
});
