/**
 * A refused command writes nothing: every prompt and option is checked before the first folder is made, so a
 * refusal (one line on stderr, exit 2) leaves the file system as it was — no empty output folder, no parents made
 * on the way to it.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliRun, tmpDir } from './helpers/cli.js';

/** Two GenEval-metadata records in ShapeWorld's words (as `dataset prompts --split test` writes them). */
const SHAPES_JSONL =
  '{"tag": "single_object", "include": [{"class": "circle", "count": 1}], "prompt": "a photo of a circle"}\n' +
  '{"tag": "single_object", "include": [{"class": "square", "count": 1}], "prompt": "a photo of a square"}\n';

/** Every path under `dir`, relative, sorted: what a command left there. */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

/** A folder holding only `files`, each with its text. */
function workDir(files: Record<string, string> = {}): string {
  const dir = tmpDir();
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

async function refused(args: string[], dir: string, message: RegExp): Promise<void> {
  const before = tree(dir);
  const r = await cliRun(args);
  expect(r.code, args.join(' ')).toBe(2);
  expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
  expect(r.stderr, args.join(' ')).toMatch(message);
  expect(tree(dir), args.join(' ')).toEqual(before);
}

describe('eval: a refused eval writes nothing', () => {
  it('an unknown word in the prompt list: no --out folder, nor its parents', async () => {
    const d = workDir({ 'prompts.txt': 'a red circle\na photo of a cat\n' });
    await refused(
      ['eval', '--prompts', path.join(d, 'prompts.txt'), '--judge', 'procedural', '--out', path.join(d, 'results', 'evals')],
      d,
      /^reflectionflow: prompt 2 \('a photo of a cat'\): cannot parse prompt "a photo of a cat": unknown word 'cat'/,
    );
  });

  it('options refused after the prompts are read: an unknown split, a --cache the generator cannot key', async () => {
    const d = workDir();
    await refused(['eval', '--split', 'nope', '--out', path.join(d, 'evals')], d, /unknown split 'nope'/);
    await refused(
      ['eval', '--split', 'test', '--backend', 'procedural', '--strategies', 'noise', '--limit', '1', '--cache', path.join(d, 'cache'), '--out', path.join(d, 'evals')],
      d,
      /--cache needs a generator that declares its identity; 'procedural' does not/,
    );
  });

  it('an --out below a file is refused before the prompts are searched', async () => {
    const d = workDir({ file: 'x' });
    await refused(['eval', '--split', 'test', '--backend', 'procedural', '--out', path.join(d, 'file', 'evals')], d, /output directory .*not a directory/);
  });
});

describe('run: a refused run writes nothing', () => {
  it('--geneval-out is not made when the roles cannot be made', async () => {
    const d = workDir({ 'p.jsonl': SHAPES_JSONL });
    await refused(
      ['run', '--prompts', path.join(d, 'p.jsonl'), '--backend', `module:${path.join(d, 'missing.mjs')}`, '--geneval-out', path.join(d, 'geneval'), '--out', path.join(d, 'runs')],
      d,
      /cannot load backend module .*missing\.mjs/,
    );
  });

  it('an unusable --geneval-out is refused before the roles are made', async () => {
    const d = workDir({ 'p.jsonl': SHAPES_JSONL, file: 'x' });
    await refused(
      ['run', '--prompts', path.join(d, 'p.jsonl'), '--backend', 'procedural', '--geneval-out', path.join(d, 'file', 'geneval'), '--out', path.join(d, 'runs')],
      d,
      /--geneval-out folder .*not a directory/,
    );
  });
});

describe('dataset: a refused dataset command writes nothing', () => {
  it('bad options or inputs of every subcommand', async () => {
    const d = workDir();
    const out = (name: string) => path.join(d, name, 'out');
    const cases: Array<[string[], RegExp]> = [
      [['dataset', 'prompts', '--split', 'bogus', '--out', path.join(out('a'), 'p.jsonl')], /unknown split 'bogus'/],
      [['dataset', 'images', '--kind', 'bogus', '--out', out('b')], /unknown kind 'bogus'/],
      [['dataset', 'images', '--kind', 'verifier', '--count', '1', '--models', path.join(d, 'none'), '--out', out('c')], /generator\.onnx is missing/],
      [['dataset', 'pairs', '--samples', path.join(d, 'none'), '--rendered', '1', '--out', out('d')], /not a verifier dataset folder/],
      [['dataset', 'genref', '--count', '1', '--model-prompts', '1', '--models', path.join(d, 'none'), '--out', out('e')], /generator\.onnx is missing/],
      [['dataset', 'export', d, '--out', out('f')], /cannot read .*run\.json/],
    ];
    for (const [args, message] of cases) await refused(args, d, message);
  });
});

