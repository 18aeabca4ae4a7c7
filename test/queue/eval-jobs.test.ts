import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { embeddedModelsFingerprint, MODELS_DIR } from '../../src/backends/embedded/files.js';
import { evalJobs } from '../../src/queue/eval-jobs.js';
import { testPrompts } from '../../src/shapeworld/prompts.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const jobs = (models?: string) =>
  evalJobs({
    records: testPrompts().slice(0, 2),
    seedsPerPrompt: () => 1,
    seed: 0,
    arms: [{ label: 'noise', strategy: 'noise', oracle: false }],
    stopAt: [],
    budgets: [1, 4],
    width: 2,
    chainHead: 'latest',
    verifierAuc: false,
    config: {},
    work: '/tmp/rf-work',
    ...(models ? { models } : {}),
  });

describe('queued eval jobs', () => {
  it('are the same jobs for the same models, and new ones once a model is retrained', () => {
    expect(jobs().map((j) => j.id)).toEqual(jobs().map((j) => j.id));
    expect(jobs()[0]!.data).toMatchObject({ models: embeddedModelsFingerprint(MODELS_DIR) });
    const before = jobs('a').map((j) => j.id);
    const after = jobs('b').map((j) => j.id);
    after.forEach((id, k) => expect(id).not.toBe(before[k]));
  });

  it("fingerprint the models by their metadata: a re-exported model changes it; no folder is 'none'", () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rf-models-'));
    dirs.push(dir);
    writeFileSync(path.join(dir, 'reflector.json'), '{"exported":"2026-12-07T23:30:00+00:00"}');
    writeFileSync(path.join(dir, 'reflector.onnx'), 'weights');
    const first = embeddedModelsFingerprint(dir);
    expect(embeddedModelsFingerprint(dir)).toBe(first);
    writeFileSync(path.join(dir, 'reflector.json'), '{"exported":"2026-12-08T05:10:00+00:00"}');
    expect(embeddedModelsFingerprint(dir)).not.toBe(first);
    expect(embeddedModelsFingerprint(path.join(dir, 'missing'))).toBe('none');
  });
});
