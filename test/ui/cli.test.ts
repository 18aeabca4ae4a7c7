import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, cli, tmpDir } from '../helpers/cli.js';

/** Spawn the CLI; resolves with the first stream line matching `pattern`, then SIGTERM and the exit code. */
function untilLine(args: string[], stream: 'stdout' | 'stderr', pattern: RegExp, cwd: string) {
  const p = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const seen = new Promise<RegExpExecArray>((resolve, reject) => {
    const check = () => {
      const m = pattern.exec(stream === 'stdout' ? out : err);
      if (m) resolve(m);
    };
    p.stdout.on('data', check);
    p.stderr.on('data', check);
    p.on('close', (code) => reject(new Error(`exited ${code} before ${pattern}: ${err}`)));
  });
  const exit = new Promise<number>((resolve) => p.on('close', (code) => resolve(code ?? -1)));
  return { seen, exit, stop: () => p.kill('SIGTERM'), output: () => ({ out, err }) };
}

describe('ui and run --ui from the CLI', () => {
  it('ui serves the page on 127.0.0.1 and stops on SIGTERM', async () => {
    const cwd = tmpDir('rf-ui-cli-');
    const ui = untilLine(['ui', '--port', '0', '--runs', 'runs'], 'stdout', /^(http:\/\/127\.0\.0\.1:\d+\/)$/m, cwd);
    const [, url] = await ui.seen;
    const page = await fetch(url!);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script src="/ui.js"');
    ui.stop();
    expect(await ui.exit).toBe(0);
    expect(ui.output().err).toMatch(/stopped/);
  });

  it('bad flags get one line and exit 2', async () => {
    const cwd = tmpDir('rf-ui-cli-');
    const cases: Array<[string[], RegExp]> = [
      [['ui', '--port', 'x'], /port/],
      [['ui', '--port', '70000'], /port/],
      [['ui', '--runs', '/proc/nope/runs', '--port', '0'], /runs folder/],
      [['run', '--prompts', 'p.jsonl', '--ui'], /--ui watches a single run/],
      [['run', '--resume', 'runs/x', '--ui'], /--ui watches a new run/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args, cwd);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('run --ui shows the run it starts and keeps the page up after it, until SIGTERM', async () => {
    const cwd = tmpDir('rf-ui-cli-');
    const run = untilLine(
      ['run', 'a red circle left of a blue square', '--backend', 'procedural', '--strategy', 'reflection', '--samples', '4', '--depth', '1', '--quiet', '--ui', '0'],
      'stderr',
      /live view: (http:\/\/127\.0\.0\.1:\d+\/)#\/run\/(\S+)/,
      cwd,
    );
    const [, url, id] = await run.seen;
    expect(readdirSync(path.join(cwd, 'runs'))).toEqual([id]);
    const stays = untilLineAfter(run, /stays at/);
    await stays;
    const summary = (await (await fetch(`${url}api/runs/${id}`)).json()) as { status: string; bestId: string };
    expect(summary.status).toBe('done');
    expect(summary.bestId).toMatch(/^r\d/);
    run.stop();
    expect(await run.exit).toBe(0);
  });
});

async function untilLineAfter(p: ReturnType<typeof untilLine>, pattern: RegExp): Promise<void> {
  for (let i = 0; i < 600 && !pattern.test(p.output().err); i++) await new Promise((r) => setTimeout(r, 100));
  expect(p.output().err).toMatch(pattern);
}
