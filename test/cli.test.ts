import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readEvents } from '../src/store/run-store.js';
import type { RunRecord } from '../src/store/types.js';
import { FAKE, ROOT, cli, cliAsync, cliRun, tmpDir } from './helpers/cli.js';
import { qualityOf } from './fixtures/fake-backend.mjs';

const GENEVAL = path.join(ROOT, 'test/fixtures/geneval_evaluation_metadata.jsonl');

function onlyRun(out: string): string {
  const dirs = readdirSync(out);
  expect(dirs).toHaveLength(1);
  return path.join(out, dirs[0]!);
}

describe('reflectionflow run', () => {
  it('runs a reflection search and writes run.json, events, images and the report', async () => {
    const out = tmpDir();
    const r = await cli(['run', 'a red circle', '--backend', FAKE, '--samples', '4', '--width', '2', '--depth', '2', '--out', out]);
    expect(r.stderr.split('\n').filter((l) => /Error|at /.test(l))).toEqual([]);
    expect(r.code).toBe(0);
    const dir = onlyRun(out);
    const run = JSON.parse(readFileSync(path.join(dir, 'run.json'), 'utf8')) as RunRecord;
    expect(run.status).toBe('done');
    expect(run.result!.imagesGenerated).toBe(8);
    expect(run.result!.budget).toBe(8);
    expect(readdirSync(path.join(dir, 'images')).filter((f) => f.endsWith('.png'))).toHaveLength(8);
    expect(existsSync(path.join(dir, 'report.html'))).toBe(true);
    expect(r.stdout).toContain(`best: ${run.result!.bestPath}`);
    expect(r.stdout).toMatch(/budget: 8\/8 images/);
    const events = readFileSync(path.join(dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(events.filter((e) => e.role === 'verifier')).toHaveLength(8);
    for (const e of events) expect(Object.keys(e)).toEqual(expect.arrayContaining(['role', 'backend', 'inputIds', 'ms', 'candidateId']));
  });

  it('dry-runs GenEval’s own 553-prompt file and an official config', async () => {
    const r = await cli(['run', '--prompts', GENEVAL, '--config', path.join(ROOT, 'test/fixtures/official_flux.1_dev_nvilascore.json'), '--backend', FAKE, '--dry-run']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('plan: 553 prompts');
    expect(r.stdout).toContain('single_object 80, two_object 99, counting 80, colors 94, position 100, color_attr 100');
    expect(r.stdout).toContain('strategy: reflection');
    expect(r.stdout).toContain('budget: 32 images per prompt, 17696 in all');
  });

  it('dry-run --json prints the plan as JSON', async () => {
    const r = await cli(['run', 'x', '--backend', FAKE, '--strategy', 'noise', '--samples', '16', '--depth', '0', '--dry-run', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ prompts: 1, strategy: 'noise', budgetPerPrompt: 16 });
  });
});

describe('bad input: one line on stderr, exit 2, nothing written', () => {
  const cases: Array<[string, (dir: string) => string[], RegExp]> = [
    ['empty prompt', () => ['run', '  ', '--backend', FAKE], /prompt is empty/],
    ['missing prompt', () => ['run', '--backend', FAKE], /missing prompt/],
    ['zero samples', () => ['run', 'x', '--samples', '0', '--backend', FAKE], /--samples.*positive integer/],
    ['fractional width', () => ['run', 'x', '--width', '1.5', '--backend', FAKE], /--width.*positive integer/],
    ['negative depth', () => ['run', 'x', '--depth', '-1', '--backend', FAKE], /depth/],
    ['unknown strategy', () => ['run', 'x', '--strategy', 'magic', '--backend', FAKE], /unknown strategy 'magic'/],
    ['unknown backend', () => ['run', 'x', '--backend', 'nope'], /unknown backend 'nope'/],
    ['a word the embedded models do not know', () => ['run', 'a photo of a cat'], /unknown word 'cat' \(ShapeWorld knows the shapes circle, .* the colors red, .*\)\n$/],
    ['a colour ShapeWorld does not draw', () => ['run', 'a gray square'], /unknown word 'gray' \(ShapeWorld knows .* the colors red, orange, yellow, green, blue, purple, pink, brown, black, white,/],
    ['a count in digits beyond the embedded models', () => ['run', '12 red squares'], /count up to 4; '12' is beyond them\n$/],
    ['a count beyond ShapeWorld', () => ['run', '12 red squares', '--backend', 'procedural'], /ShapeWorld counts one to ten \(1–9 in digits\); '12' is beyond it\n$/],
    ['a word people use for a ShapeWorld class', () => ['run', 'two red cubes'], /unknown word 'cubes' \(did you mean 'squares'\?\)\n/],
    ['a count beyond the embedded models', () => ['run', 'five circles'], /count up to 4; 'five' is beyond them/],
    ['a prompt the procedural backend cannot parse', () => ['run', 'a photo of a cat', '--backend', 'procedural'], /cat/],
    ['unreadable config', (d) => ['run', 'x', '--config', path.join(d, 'none.json')], /cannot read config/],
    ['invalid JSON config', (d) => ['run', 'x', '--config', write(d, 'bad.json', '{"search": ')], /not valid JSON/],
    ['invalid YAML config', (d) => ['run', 'x', '--config', write(d, 'bad.yaml', 'search: [\n')], /not valid YAML/],
    ['wrong config value', (d) => ['run', 'x', '--config', write(d, 'c.json', '{"search":{"samples":-3}}')], /search\.samples/],
    ['unknown config key', (d) => ['run', 'x', '--config', write(d, 'c.json', '{"serach":{}}')], /serach|Unrecognized/],
    ['malformed JSONL line', (d) => ['run', '--backend', FAKE, '--prompts', write(d, 'p.jsonl', '{"tag":"colors","include":[{"class":"cup","count":1}],"prompt":"a cup"}\n{oops\n')], /p\.jsonl:2: not valid JSON/],
    ['JSONL record missing prompt', (d) => ['run', '--backend', FAKE, '--prompts', write(d, 'p.jsonl', '{"tag":"colors","include":[{"class":"cup","count":1}]}\n')], /p\.jsonl:1: prompt/],
    ['unwritable output dir', (d) => ['run', 'x', '--backend', FAKE, '--out', path.join(write(d, 'file', ''), 'sub')], /output directory .*not a directory/],
    ['resume of a non-run', (d) => ['run', '--resume', d], /cannot read .*run\.json/],
    ['a budget above the limit', () => ['run', 'x', '--backend', FAKE, '--depth', '1000000'], /budget of 2000008 images .* above the limit of 4096; lift it with --budget-limit 2000008/],
    ['an exponent-form number, too large', () => ['run', 'x', '--backend', FAKE, '--samples', '1e9', '--strategy', 'noise'], /budget of 1000000008 images .*limit of 4096/],
    ['a number beyond safe integers', () => ['run', 'x', '--backend', FAKE, '--samples', '99999999999999999999'], /too large \(at most 9007199254740991\)/],
  ];
  for (const [name, args, pattern] of cases) {
    it(name, async () => {
      const dir = tmpDir();
      const out = path.join(dir, 'out');
      const argv = args(dir);
      const r = await cli(argv.includes('--out') || argv.includes('--resume') ? argv : [...argv, '--out', out]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
    });
  }
});

function write(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('kill -9 and --resume', () => {
  it('continues a killed run without redoing a finished call and chooses as an uninterrupted run', async () => {
    const base = tmpDir();
    const config = write(base, 'slow.json', JSON.stringify({ backend: FAKE, options: { latencyMs: 40, concurrency: 2 } }));
    const args = ['--config', config, '--samples', '8', '--width', '2', '--depth', '4', '--seed', '11', '--quiet'];

    const refOut = path.join(base, 'ref');
    const ref = await cli(['run', 'a blue star', ...args, '--out', refOut, '--no-report']);
    expect(ref.code).toBe(0);
    const refRun = JSON.parse(readFileSync(path.join(onlyRun(refOut), 'run.json'), 'utf8')) as RunRecord;

    const out = path.join(base, 'killed');
    mkdirSync(out);
    const child = cliAsync(['run', 'a blue star', ...args, '--out', out]);
    // wait until some calls have finished, then kill without warning
    await new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const timer = setInterval(() => {
        const dirs = readdirSync(out);
        const events = dirs[0] ? path.join(out, dirs[0], 'events.jsonl') : '';
        const n = events && existsSync(events) ? readFileSync(events, 'utf8').split('\n').length - 1 : 0;
        if (n >= 12) {
          clearInterval(timer);
          child.kill('SIGKILL');
          resolve();
        } else if (Date.now() - started > 20_000) {
          clearInterval(timer);
          child.kill('SIGKILL');
          reject(new Error('run made no progress'));
        }
      }, 5);
    });
    await new Promise((r) => child.on('exit', r));
    const dir = onlyRun(out);
    const before = JSON.parse(readFileSync(path.join(dir, 'run.json'), 'utf8')) as RunRecord;
    expect(before.status).toBe('running');

    const resumed = await cli(['run', '--resume', dir, '--quiet']);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    const after = JSON.parse(readFileSync(path.join(dir, 'run.json'), 'utf8')) as RunRecord;
    expect(after.status).toBe('done');
    expect(after.result!.bestId).toBe(refRun.result!.bestId);
    expect(after.result!.bestScore).toBe(refRun.result!.bestScore);
    expect(after.candidates.map((c) => c.id)).toEqual(refRun.candidates.map((c) => c.id));
    const events = await readEvents(path.join(dir, 'events.jsonl'));
    const keys = events.filter((e) => !e.error).map((e) => e.key);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.length).toBe(8 + 8 + 4 * 2 * 4); // 8 pool gen+verify, then reflect, refine, correct, verify per step
    expect(readdirSync(path.join(dir, 'images')).filter((f) => f.endsWith('.png')).sort()).toEqual(
      refRun.candidates.map((c) => `${c.id}.png`).sort(),
    );
  });
});

describe('reflectionflow eval', () => {
  it('runs strategies × budgets on the test split and writes table, JSON and plot', async () => {
    const out = tmpDir();
    const r = await cliRun(['eval', '--split', 'test', '--backend', 'procedural', '--strategies', 'noise,reflection', '--budgets', '1,4', '--limit', '1', '--seeds', '2', '--out', out, '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('| strategy | budget | single_object | two_object | counting | colors | position | color_attr | overall |');
    const dir = path.join(out, readdirSync(out)[0]!);
    expect(readdirSync(dir).sort()).toEqual(['results.json', 'samples.jsonl', 'scaling.svg', 'table.md']);
    const results = JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8'));
    expect(results.cells).toHaveLength(4);
    expect(readFileSync(path.join(dir, 'samples.jsonl'), 'utf8').trim().split('\n')).toHaveLength(6 * 2 * 2 * 2);
  });

  it('an @oracle arm sits beside the configured ones; the test split shows the paper rows; bad arms are refused', async () => {
    const out = tmpDir();
    const r = await cliRun(['eval', '--split', 'test', '--backend', 'procedural', '--strategies', 'noise,reflection@oracle', '--budgets', '1,2', '--limit', '1', '--seeds', '1', '--out', out, '--quiet']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('| reflection@oracle | 2 |');
    expect(r.stdout).toContain('| noise+prompt | 32 | 0.87 |');
    const bad = await cliRun(['eval', '--split', 'test', '--backend', 'procedural', '--strategies', 'reflection@magic', '--out', out]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown strategy 'reflection@magic'/);
  });

  it('refuses a prompt file the evaluator cannot judge, naming the class', async () => {
    const r = await cliRun(['eval', '--prompts', GENEVAL, '--backend', 'procedural', '--out', tmpDir()]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/prompt 1 \('a photo of a bench'\): ShapeWorld cannot judge class 'bench'/);
  });
});

describe('the offline default', () => {
  it('uses the embedded models with the full method (reflection) when no backend is named', async () => {
    const r = await cli(['run', 'a photo of a red circle', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('strategy: reflection');
    expect(r.stdout).toContain('roles: generator=embedded  verifier=embedded  reflector=embedded  corrector=embedded  refiner=embedded');
  });
});

describe('budget limit', () => {
  it('--budget-limit lifts the limit for a run that means it', async () => {
    const r = await cli(['run', 'x', '--backend', FAKE, '--depth', '5000', '--budget-limit', '20000', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('budget: 10008 images per prompt');
  });
});

describe('run --stop-at', () => {
  it('stops after the wave whose image reaches the score, records where, and a resume has nothing to do', async () => {
    const out = tmpDir();
    const r = await cliRun(['run', 'a red circle', '--backend', 'procedural', '--strategy', 'noise', '--samples', '32', '--stop-at', '0.9', '--wave', '2', '--out', out, '--json']);
    expect(r.code).toBe(0);
    const [summary] = JSON.parse(r.stdout);
    expect(summary.stoppedAt).toMatch(/^r0-i/);
    expect(summary.imagesGenerated % 2).toBe(0);
    expect(summary.imagesGenerated).toBeLessThan(summary.budget);
    expect(summary.bestScore).toBeGreaterThanOrEqual(0.9);
    const again = await cliRun(['run', '--resume', summary.dir]);
    expect(again.stderr).toMatch(/already done/);
    const bad = await cliRun(['run', 'x', '--backend', 'procedural', '--stop-at', 'high']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/expected a number, got 'high'/);
  });
});

describe('run --budget', () => {
  it('splits one number per strategy as eval does, printed by --dry-run; refuses it beside --samples', async () => {
    const plans = await Promise.all(
      ['noise', 'reflection'].map(async (s) => (await cli(['run', 'a red circle', '--backend', 'procedural', '--strategy', s, '--budget', '32', '--dry-run'])).stdout),
    );
    expect(plans[0]).toContain('pool 32 = samples 32 + width 1 × depth 0');
    expect(plans[1]).toContain('samples 16  width 2  depth 8');
    for (const p of plans) expect(p).toContain('budget: 32 images per prompt');
    const both = await cli(['run', 'x', '--backend', 'procedural', '--budget', '8', '--samples', '3']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/give --budget, or --samples and --depth, not both/);
  });
});

describe('run --prompts --geneval-out', () => {
  it("writes the folder layout GenEval's scorer reads: <index:05d>/metadata.jsonl (the input record) and samples/0000.png", async () => {
    const d = tmpDir();
    const lines = readFileSync(GENEVAL, 'utf8').split('\n').filter(Boolean).slice(0, 3);
    const file = path.join(d, 'meta.jsonl');
    writeFileSync(file, lines.join('\n') + '\n');
    const out = path.join(d, 'geneval');
    const r = await cliRun(['run', '--prompts', file, '--backend', FAKE, '--samples', '2', '--depth', '1', '--out', path.join(d, 'runs'), '--geneval-out', out, '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['00000', '00001', '00002']);
    lines.forEach((line, i) => {
      const folder = path.join(out, String(i).padStart(5, '0'));
      expect(readdirSync(folder).sort()).toEqual(['metadata.jsonl', 'samples']);
      const meta = readFileSync(path.join(folder, 'metadata.jsonl'), 'utf8');
      expect(meta.endsWith('\n')).toBe(true);
      expect(meta.trim().split('\n')).toHaveLength(1);
      expect(JSON.parse(meta)).toEqual(JSON.parse(line));
      expect(readdirSync(path.join(folder, 'samples'))).toEqual(['0000.png']);
      expect(readFileSync(path.join(folder, 'samples', '0000.png')).subarray(1, 4).toString()).toBe('PNG');
    });
    const bad = await cliRun(['run', 'a cat', '--backend', FAKE, '--geneval-out', out]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--geneval-out needs --prompts/);
  });
});

describe('run --prompts --geneval-out --geneval-rungs', () => {
  it('writes one GenEval tree per budget rung: nfe<n>/ holds the best of the first n images, by the search\'s own scores', async () => {
    const d = tmpDir();
    const lines = readFileSync(GENEVAL, 'utf8').split('\n').filter(Boolean).slice(10, 13);
    const file = path.join(d, 'meta.jsonl');
    writeFileSync(file, lines.join('\n') + '\n');
    const out = path.join(d, 'geneval');
    const runs = path.join(d, 'runs');
    const r = await cliRun(['run', '--prompts', file, '--backend', FAKE, '--strategy', 'reflection', '--samples', '4', '--width', '2', '--depth', '2', '--out', runs, '--geneval-out', out, '--geneval-rungs', '1,2,4,8', '--quiet', '--no-report']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['00000', '00001', '00002', 'nfe1', 'nfe2', 'nfe4', 'nfe8']);
    const [batchDir] = readdirSync(runs);
    const batch = JSON.parse(readFileSync(path.join(runs, batchDir!, 'batch.json'), 'utf8'));
    const quality = async (file: string) => qualityOf({ png: new Uint8Array(readFileSync(file)) });
    let differ = 0;
    for (const [i, line] of lines.entries()) {
      const run = JSON.parse(readFileSync(path.join(runs, batchDir!, batch.prompts[i].dir, 'run.json'), 'utf8'));
      // plan order: the pool by index, then round by round
      const ids: string[] = run.candidates.map((c: { id: string }) => c.id);
      expect(ids.slice(0, 4).every((id) => id.startsWith('r0-'))).toBe(true);
      const scores: number[] = run.candidates.map((c: { evaluation: { score: number } }) => c.evaluation.score);
      const picks: number[] = [];
      for (const n of [1, 2, 4, 8]) {
        const folder = path.join(out, `nfe${n}`, String(i).padStart(5, '0'));
        expect(readdirSync(folder).sort()).toEqual(['metadata.jsonl', 'samples']);
        expect(JSON.parse(readFileSync(path.join(folder, 'metadata.jsonl'), 'utf8'))).toEqual(JSON.parse(line));
        expect(readdirSync(path.join(folder, 'samples'))).toEqual(['0000.png']);
        const q = await quality(path.join(folder, 'samples', '0000.png'));
        expect(q / 255).toBeCloseTo(Math.max(...scores.slice(0, n)), 10);
        picks.push(q);
      }
      // the largest rung is the whole search: the final image
      expect(picks[3]).toBe(await quality(path.join(out, String(i).padStart(5, '0'), 'samples', '0000.png')));
      if (picks[0] !== picks[3]) differ++;
    }
    expect(differ).toBeGreaterThan(0); // the rungs really differ, so the check above could fail
    const over = await cliRun(['run', '--prompts', file, '--backend', FAKE, '--samples', '4', '--depth', '1', '--out', runs, '--geneval-out', out, '--geneval-rungs', '4,16']);
    expect(over.code).toBe(2);
    expect(over.stderr).toMatch(/--geneval-rungs 16: above the 6 images each search may generate/);
    const alone = await cliRun(['run', '--prompts', file, '--backend', FAKE, '--geneval-rungs', '4']);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toMatch(/--geneval-rungs needs --geneval-out/);
  });
});

describe('price table', () => {
  it('a bad entry is one line on stderr and exit 2, before anything runs', async () => {
    const d = tmpDir();
    for (const prices of [{ 'openai:gpt-4o': { perImage: -1 } }, { 'openai:gpt-4o': { perToken: 1 } }, { 'openai:gpt-4o': 'free' }]) {
      const file = path.join(d, 'c.json');
      writeFileSync(file, JSON.stringify({ backend: 'procedural', prices }));
      const r = await cliRun(['run', 'a red circle', '--config', file, '--out', path.join(d, 'runs')]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/prices/);
      expect(existsSync(path.join(d, 'runs'))).toBe(false);
    }
  });
});
