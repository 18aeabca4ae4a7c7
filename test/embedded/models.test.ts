import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { createEmbeddedBackend } from '../../src/backends/embedded/backend.js';
import { MODELS_DIR } from '../../src/backends/embedded/files.js';
import { FlowGenerator } from '../../src/backends/embedded/generator.js';
import { EmbeddedVerifier } from '../../src/backends/embedded/verifier.js';
import { loadModel, ort } from '../../src/backends/embedded/onnx.js';
import { UserError } from '../../src/core/errors.js';

describe('shipped ONNX models', () => {
  it('every shipped model loads, has a card, and the files stay small', async () => {
    const onnx = readdirSync(MODELS_DIR).filter((f) => f.endsWith('.onnx'));
    expect(onnx.sort()).toEqual(['generator.onnx', 'verifier.onnx']);
    let total = 0;
    for (const f of onnx) {
      const name = f.replace(/\.onnx$/, '');
      total += readFileSync(path.join(MODELS_DIR, f)).length;
      const { session, meta } = await loadModel<{ size: number; vocab: string[] }>(MODELS_DIR, name, 1);
      expect(meta.size).toBe(32);
      expect(session.inputNames.length).toBeGreaterThan(0);
      expect(readFileSync(path.join(MODELS_DIR, `${name}.md`), 'utf8')).toMatch(/## Reproduce[\s\S]*training\/train_\w+\.py/);
    }
    expect(total).toBeLessThan(30 * 1024 * 1024);
  });

  it('generator: x [B,3,32,32], t [B], tokens [B,T] → v [B,3,32,32], for any batch size', async () => {
    const { session, meta } = await loadModel<{ maxTokens: number }>(MODELS_DIR, 'generator', 1);
    expect([...session.inputNames].sort()).toEqual(['t', 'tokens', 'x']);
    expect(session.outputNames).toEqual(['v']);
    for (const b of [1, 3]) {
      const out = await session.run({
        x: new ort.Tensor('float32', new Float32Array(b * 3 * 32 * 32), [b, 3, 32, 32]),
        t: new ort.Tensor('float32', new Float32Array(b).fill(0.5), [b]),
        tokens: new ort.Tensor('int64', new BigInt64Array(b * meta.maxTokens).fill(1n), [b, meta.maxTokens]),
      });
      expect(out.v!.dims).toEqual([b, 3, 32, 32]);
      expect(Array.from(out.v!.data as Float32Array).every(Number.isFinite)).toBe(true);
    }
  });

  it('generator: same seed ⇒ same PNG bytes, alone or in a batch; other seed ⇒ other image', async () => {
    const g = await FlowGenerator.load(MODELS_DIR, { steps: 4 });
    const prompt = 'a photo of a red circle';
    const a = await g.generate({ prompt, seed: 42 });
    const [b, , c] = await Promise.all([g.generate({ prompt, seed: 42 }), g.generate({ prompt, seed: 1 }), g.generate({ prompt, seed: 2 })]);
    expect(Buffer.from(a.png).equals(Buffer.from(b!.png))).toBe(true);
    expect(Buffer.from(a.png).equals(Buffer.from(c!.png))).toBe(false);
    const meta = await sharp(Buffer.from(a.png)).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 32, 32]);
  });

  it('verifier: image [B,3,32,32] + tokens → logit [B]; deterministic; a probability per image', async () => {
    const { session } = await loadModel(MODELS_DIR, 'verifier', 1);
    expect([...session.inputNames].sort()).toEqual(['image', 'tokens']);
    expect(session.outputNames).toEqual(['logit']);
    const v = await EmbeddedVerifier.load(MODELS_DIR);
    const g = await FlowGenerator.load(MODELS_DIR, { steps: 4 });
    const image = await g.generate({ prompt: 'a photo of a blue square', seed: 3 });
    const e1 = await v.verify({ image, prompt: 'a photo of a blue square' });
    const e2 = await v.verify({ image, prompt: 'a photo of a blue square' });
    expect(e1).toEqual(e2);
    expect(e1.score).toBeGreaterThanOrEqual(0);
    expect(e1.score).toBeLessThanOrEqual(1);
    expect(e1.label).toBe(e1.score >= 0.5 ? 'yes' : 'no');
  });

  it('unknown words and corrupt images are the user’s error, named', async () => {
    const roles = await createEmbeddedBackend({ steps: 2 });
    await expect(roles.generator!.generate({ prompt: 'a photo of a cat', seed: 1 })).rejects.toThrow(/'cat'.*vocabulary/);
    await expect(roles.verifier!.verify({ image: { png: new Uint8Array([1, 2, 3]) }, prompt: 'a red circle' })).rejects.toThrow(UserError);
    await expect(createEmbeddedBackend({ stepz: 3 })).rejects.toThrow(/unknown option 'stepz'/);
  });
});
