import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, ROOT, tmpDir } from './helpers/cli.js';

/** Packages that take a noticeable time to load (onnxruntime and its worker pool, image codecs, servers, SDKs). */
const HEAVY = ['onnxruntime-node', 'piscina', 'sharp', 'bullmq', 'ioredis', 'fastify', 'openai', '@google/genai', '@fal-ai/client', 'tar-stream'];

/** Run the built CLI and list the packages it imported (test/fixtures/record-packages.mjs). */
function cliPackages(args: string[]): Promise<{ code: number; stderr: string; stdout: string; packages: string[] }> {
  const log = path.join(tmpDir('rf-packages-'), 'packages.log');
  const hook = path.join(ROOT, 'test/fixtures/record-packages.mjs');
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', hook, BIN, ...args], { cwd: ROOT, env: { ...process.env, RF_PACKAGES_LOG: log }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      const packages = existsSync(log) ? [...new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean))] : [];
      resolve({ code: code ?? -1, stdout, stderr, packages });
    });
  });
}

describe('what the CLI loads', () => {
  it('--version, --help and a command’s --help load commander and nothing heavy', async () => {
    for (const args of [['--version'], ['--help'], ['run', '--help'], ['serve', '--help'], ['dataset', 'genref', '--help']]) {
      const r = await cliPackages(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.packages, args.join(' ')).toEqual(['commander']);
    }
  });

  it('refuses a prompt the embedded models cannot read before loading them: one line, exit 2, the word and its nearest', async () => {
    const out = path.join(tmpDir(), 'out');
    const r = await cliPackages(['run', 'a red cube', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`reflectionflow: cannot parse prompt "a red cube": unknown word 'cube' (did you mean 'square'?)\n`);
    expect(r.packages.filter((p) => HEAVY.includes(p))).toEqual([]);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  });

  it('refuses what only the models’ cards say before loading them: a count beyond them, a size they do not make, also on --dry-run', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['run', 'five circles'], /^reflectionflow: the embedded ShapeWorld models count up to 4; 'five' is beyond them\n$/],
      [['run', 'a red circle', '--size', '64'], /^reflectionflow: the embedded generator makes 32×32 images only; drop --size .* or pass 32\n$/],
      [['run', 'a violet circle', '--dry-run'], /unknown word 'violet' \(did you mean 'purple'\?\)\n$/],
    ];
    for (const [args, message] of cases) {
      const r = await cliPackages([...args, '--out', path.join(tmpDir(), 'out')]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.packages.filter((p) => HEAVY.includes(p)), args.join(' ')).toEqual([]);
    }
  });

  it('eval: a prompt of the list the embedded models cannot read is refused, named by its number, before they load', async () => {
    const dir = tmpDir();
    const list = path.join(dir, 'prompts.txt');
    writeFileSync(list, 'a red circle\na photo of a cat\n');
    const r = await cliPackages(['eval', '--prompts', list, '--judge', 'procedural', '--out', path.join(dir, 'evals')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^reflectionflow: prompt 2 \('a photo of a cat'\): cannot parse prompt "a photo of a cat": unknown word 'cat' \(ShapeWorld knows .*\)\n$/);
    expect(r.packages.filter((p) => HEAVY.includes(p) && p !== 'sharp')).toEqual([]); // the judge's evaluator needs sharp
  });

  it('loads the embedded models for a prompt they read', async () => {
    const r = await cliPackages(['run', 'a red circle', '--strategy', 'noise', '--samples', '1', '--depth', '0', '--quiet', '--no-report', '--out', tmpDir()]);
    expect(r.code).toBe(0);
    expect(r.packages).toContain('onnxruntime-node');
  });
});
