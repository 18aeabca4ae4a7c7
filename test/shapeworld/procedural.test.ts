import { Command } from 'commander';
import { describe, expect, it, vi } from 'vitest';
import { createProceduralBackend, editToText, explicitPrompt, parseEdit } from '../../src/backends/procedural/index.js';
import { datasetCommand } from '../../src/cli/commands/dataset.js';
import { UserError } from '../../src/core/errors.js';
import { evaluateImage } from '../../src/shapeworld/evaluate.js';
import { parsePrompt, promptsToJsonl, testPrompts, trainPrompts } from '../../src/shapeworld/prompts.js';

const recs = testPrompts();
// a spread over all six categories
const sample = recs.filter((_, i) => i % 4 === 0);

describe('procedural backend', () => {
  it('declares names and concurrency, and rejects bad options', () => {
    const b = createProceduralBackend({ concurrency: 3 });
    expect(b.verifier.name).toBe('oracle');
    for (const r of [b.generator, b.verifier, b.reflector, b.refiner, b.corrector]) {
      expect(r.name.length).toBeGreaterThan(0);
      expect(r.concurrency).toBe(3);
    }
    expect(() => createProceduralBackend({ defectRate: 2 })).toThrow(UserError);
    expect(() => createProceduralBackend({ defectrate: 0.1 })).toThrow(/unknown option 'defectrate'/);
  });

  it('is deterministic: same prompt and seed give the same PNG bytes', async () => {
    const a = createProceduralBackend();
    const b = createProceduralBackend();
    const prompt = 'a photo of a red star and a blue circle';
    const x = await a.generator.generate({ prompt, seed: 4 });
    const y = await b.generator.generate({ prompt, seed: 4 });
    expect(Buffer.from(x.png).equals(Buffer.from(y.png))).toBe(true);
    const z = await a.generator.generate({ prompt, seed: 5 });
    expect(Buffer.from(x.png).equals(Buffer.from(z.png))).toBe(false);
    const refl = await a.reflector.reflect({ image: x, prompt, currentPrompt: prompt });
    const c1 = await a.corrector.correct({ image: x, prompt, reflection: refl, seed: 1 });
    const c2 = await b.corrector.correct({ image: x, prompt, reflection: refl, seed: 1 });
    expect(Buffer.from(c1.png).equals(Buffer.from(c2.png))).toBe(true);
  });

  it('defectRate controls how often the generator is wrong; the oracle scores higher-is-better', async () => {
    const clean = createProceduralBackend({ defectRate: 0 });
    const broken = createProceduralBackend({ defectRate: 1 });
    for (const rec of sample) {
      const good = await clean.verifier.verify({ image: await clean.generator.generate({ prompt: rec.prompt, seed: 1 }), prompt: rec.prompt, meta: rec });
      const bad = await broken.verifier.verify({ image: await broken.generator.generate({ prompt: rec.prompt, seed: 1 }), prompt: rec.prompt, meta: rec });
      expect([good.score, good.label], rec.prompt).toEqual([1, 'yes']);
      expect(bad.label, rec.prompt).toBe('no');
      expect(bad.score).toBeLessThan(1);
      expect(bad.score).toBeGreaterThanOrEqual(0);
      expect(bad.raw).toMatch(/expected/);
    }
    // the default rate lands in between
    const dflt = createProceduralBackend();
    let wrong = 0;
    for (const rec of recs.slice(0, 60)) {
      const img = await dflt.generator.generate({ prompt: rec.prompt, seed: 9 });
      if (!(await evaluateImage(img.png, rec)).correct) wrong++;
    }
    expect(wrong).toBeGreaterThan(20);
    expect(wrong).toBeLessThan(55);
  });

  it('reflections name concrete edits, one per line, and the corrector carries them out', async () => {
    const b = createProceduralBackend({ defectRate: 1, fixRate: 1 });
    let fixed = 0;
    for (const rec of sample) {
      const img = await b.generator.generate({ prompt: rec.prompt, seed: 2 });
      const refl = await b.reflector.reflect({ image: img, prompt: rec.prompt, currentPrompt: rec.prompt });
      expect(refl.items.length, rec.prompt).toBeGreaterThan(0);
      expect(refl.text).toBe(refl.items.join('\n'));
      for (const item of refl.items) {
        expect(item).toMatch(/^(Add|Remove|Replace|Move) /);
        expect(parseEdit(item), item).not.toBeNull();
      }
      const out = await b.corrector.correct({ image: img, prompt: rec.prompt, reflection: refl, seed: 2 });
      if ((await evaluateImage(out.png, rec)).correct) fixed++;
    }
    expect(fixed / sample.length).toBeGreaterThanOrEqual(0.9);
    // with fixRate 0 nothing changes for the better
    const lazy = createProceduralBackend({ defectRate: 1, fixRate: 0 });
    const rec = recs.find((r) => r.tag === 'position')!;
    const img = await lazy.generator.generate({ prompt: rec.prompt, seed: 3 });
    const refl = await lazy.reflector.reflect({ image: img, prompt: rec.prompt, currentPrompt: rec.prompt });
    const out = await lazy.corrector.correct({ image: img, prompt: rec.prompt, reflection: refl, seed: 3 });
    expect((await evaluateImage(out.png, rec)).correct).toBe(false);
  });

  it('a correct image gets no edits', async () => {
    const b = createProceduralBackend({ defectRate: 0 });
    const rec = recs.find((r) => r.tag === 'color_attr')!;
    const img = await b.generator.generate({ prompt: rec.prompt, seed: 1 });
    const refl = await b.reflector.reflect({ image: img, prompt: rec.prompt, currentPrompt: rec.prompt });
    expect(refl.items).toEqual([]);
  });

  it('edit instructions round-trip through text', () => {
    for (const text of [
      'Add a red circle to the left of the blue square',
      'Add a circle',
      'Add an orange star above the cross',
      'Remove one circle',
      'Remove the green circle',
      'Replace the green star with a blue star',
      'Move the star to the right of the square',
    ]) {
      expect(editToText(parseEdit(text)!)).toBe(text);
    }
    expect(parseEdit('Make it prettier')).toBeNull();
    expect(parseEdit('Add a dog')).toBeNull();
  });

  it('the refiner is explicit, never drops content, and the generator reads its output', async () => {
    const b = createProceduralBackend({ defectRate: 0 });
    for (const rec of [...sample, ...trainPrompts({ count: 40, seed: 1 })]) {
      const orig = parsePrompt(rec.prompt);
      const refined = await b.refiner.refine({ prompt: rec.prompt, currentPrompt: rec.prompt, image: { png: new Uint8Array() } });
      expect(refined).not.toBe(rec.prompt);
      const spec = parsePrompt(refined);
      for (const c of orig.include) expect(spec.include, refined).toContainEqual(expect.objectContaining({ class: c.class, count: c.count, ...(c.color ? { color: c.color } : {}) }));
      for (const c of orig.include.filter((x) => x.position)) {
        const target = orig.include[c.position![1]]!;
        const mine = spec.include.find((x) => x.class === c.class && x.position)!;
        expect([mine.position![0], spec.include[mine.position![1]]!.class]).toEqual([c.position![0], target.class]);
      }
      for (const e of orig.exclude ?? []) expect(spec.exclude).toContainEqual(e);
      const img = await b.generator.generate({ prompt: refined, seed: 1 });
      expect((await evaluateImage(img.png, rec)).correct, refined).toBe(true);
    }
    expect(explicitPrompt(parsePrompt('a photo of two red stars'))).toBe('a photo of exactly two red stars on a plain gray background');
  });

  it('rejects prompts outside ShapeWorld with the vocabulary', async () => {
    const b = createProceduralBackend();
    await expect(b.generator.generate({ prompt: 'a photo of a bench', seed: 0 })).rejects.toThrow(/unknown word 'bench'.*the shapes circle/);
  });
});

describe('dataset prompts command', () => {
  async function run(args: string[]): Promise<string> {
    const chunks: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
      chunks.push(String(c));
      return true;
    });
    try {
      const program = new Command('reflectionflow').exitOverride();
      program.addCommand(datasetCommand());
      await program.parseAsync(['node', 'reflectionflow', ...args]);
    } finally {
      spy.mockRestore();
    }
    return chunks.join('');
  }

  it('prints the test split and seeded training prompts as GenEval JSONL', async () => {
    expect(await run(['dataset', 'prompts', '--split', 'test'])).toBe(promptsToJsonl(recs));
    expect(await run(['dataset', 'prompts', '--split', 'train', '--count', '7', '--seed', '3'])).toBe(promptsToJsonl(trainPrompts({ count: 7, seed: 3 })));
    await expect(run(['dataset', 'prompts', '--split', 'val'])).rejects.toThrow(/unknown split 'val'/);
  });
});
