/**
 * One option reader for every backend: typed values with errors that name the backend and the option, unknown
 * options refused, and the earlier spellings of the shared options read as today's.
 */
import { describe, expect, it } from 'vitest';
import { createComfyBackend } from '../../src/backends/comfyui/index.js';
import { OptionReader } from '../../src/backends/options.js';
import { createProceduralBackend } from '../../src/backends/procedural/index.js';
import { UserError } from '../../src/core/errors.js';

describe('OptionReader', () => {
  it('reads baseURL and url as baseUrl, imageSize as size', () => {
    const r = new OptionReader('x', { baseURL: 'http://a', imageSize: '512x512' });
    expect(r.string('baseUrl')).toBe('http://a');
    expect(r.string('size')).toBe('512x512');
    r.check();
    expect(new OptionReader('x', { url: 'http://b' }).string('baseUrl')).toBe('http://b');
  });

  it('refuses both spellings of one option', () => {
    expect(() => new OptionReader('openai', { baseURL: 'http://a', baseUrl: 'http://b' })).toThrow(
      "openai backend: options 'baseURL' and 'baseUrl' are one option ('baseURL' is its old name); keep 'baseUrl'",
    );
  });

  it('names the option and what it must be; refuses options nobody read', () => {
    const r = new OptionReader('y', { n: 1.5, colour: 'red' });
    expect(() => r.int('n', 1, 1)).toThrow(/y backend: option 'n' must be an integer ≥ 1, got 1.5/);
    expect(() => r.check()).toThrow(UserError);
    expect(() => r.check()).toThrow(/unknown option 'colour' \(options: n\)/);
  });
});

describe('backends read their options with it', () => {
  it('procedural', () => {
    expect(() => createProceduralBackend({ defectRate: 2 })).toThrow(/procedural backend: option 'defectRate' must be a number in \[0, 1\], got 2/);
    expect(() => createProceduralBackend({ concurrency: 0 })).toThrow(/option 'concurrency' must be an integer ≥ 1/);
    expect(createProceduralBackend({ concurrency: 5 }).verifier.concurrency).toBe(5);
  });

  it('comfyui takes its old url option as baseUrl', () => {
    const roles = createComfyBackend({ url: 'http://127.0.0.1:1', workflow: 'examples/comfyui/flux-dev-t2i.json' });
    expect(roles.generator).toBeDefined();
    expect(() => createComfyBackend({ url: 'http://a', baseUrl: 'http://b', workflow: 'examples/comfyui/flux-dev-t2i.json' })).toThrow(/keep 'baseUrl'/);
  });
});
