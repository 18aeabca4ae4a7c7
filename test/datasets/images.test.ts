import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeGeneratorDataset } from '../../src/datasets/images.js';
import { COMPOSITIONAL_TAGS } from '../../src/shapeworld/rules.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function compositionalTags(balanced: boolean): Promise<Map<string, number>> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rf-gen-data-'));
  dirs.push(dir);
  await writeGeneratorDataset(dir, 800, 3, undefined, { compositional: 0.5, balanced });
  const tags = new Map<string, number>();
  for (const line of readFileSync(path.join(dir, 'records.jsonl'), 'utf8').trim().split('\n')) {
    const tag = (JSON.parse(line) as { tag: string }).tag;
    if ((COMPOSITIONAL_TAGS as readonly string[]).includes(tag)) tags.set(tag, (tags.get(tag) ?? 0) + 1);
  }
  expect(JSON.parse(readFileSync(path.join(dir, 'meta.json'), 'utf8'))).toMatchObject({ count: 800, compositional: 400, balanced });
  return tags;
}

describe('dataset images --kind generator', () => {
  it('--balanced gives the four compositional kinds equal shares; by default three objects are rare', async () => {
    const drawn = await compositionalTags(false);
    expect(drawn.get('three_object') ?? 0).toBeLessThan(40);
    const balanced = await compositionalTags(true);
    for (const tag of COMPOSITIONAL_TAGS) expect(balanced.get(tag), tag).toBeGreaterThan(70);
  }, 60_000);
});
