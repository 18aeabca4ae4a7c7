/**
 * The CLI under faults: unusable output folders, calls that fail, a role that fails from its first call on, two
 * processes on one run directory, flags that a resume would silently ignore.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, FAKE, cliAsync, cliRun, tmpDir } from './helpers/cli.js';

const runDirs = (parent: string): string[] => (existsSync(parent) ? readdirSync(parent).map((d) => path.join(parent, d)) : []);
const runJson = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'run.json'), 'utf8'));
const events = (dir: string) =>
  readFileSync(path.join(dir, 'events.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));

/** A port nothing listens on (for a moment): connection refused. */
async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** An OpenAI-compatible yes/no verifier: `yes` for every image. */
function yesServer(port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const logprobs = { content: [{ token: 'yes', logprob: Math.log(0.8), bytes: null, top_logprobs: [{ token: 'yes', logprob: Math.log(0.8), bytes: null }, { token: 'no', logprob: Math.log(0.2), bytes: null }] }] };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 'c',
          object: 'chat.completion',
          created: 0,
          model: 'm',
          choices: [{ index: 0, message: { role: 'assistant', content: 'yes' }, logprobs, finish_reason: 'stop' }],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        }),
      );
    });
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

const servers: http.Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
});

describe('run: output folders', () => {
  it('refuses a folder it cannot make (procfs) at once: one line, exit 2, nothing hangs', async () => {
    const started = Date.now();
    const r = await cliRun(['run', 'a red circle', '--backend', 'procedural', '--out', '/proc/rf-x/y']);
    // the old hang never returned; the CLI's start (no backend loaded yet) is most of the time: ~0.35 s alone
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/output directory \/proc\/rf-x\/y cannot be created/);
  });

  it('refuses a file where the folder should be', async () => {
    const dir = tmpDir();
    writeFileSync(path.join(dir, 'file'), 'x');
    const r = await cliRun(['run', 'a red circle', '--backend', 'procedural', '--out', path.join(dir, 'file', 'runs')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not a directory/);
  });
});

describe('run: failed calls', () => {
  it('a size the image roles can never make is refused before anything is written', async () => {
    const out = tmpDir();
    const r = await cliRun(['run', 'a red circle', '--backend', 'procedural', '--size', '100000', '--strategy', 'noise', '--samples', '16', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/the procedural backend renders 8–4096 pixels per side, not 100000/);
    expect(runDirs(out)).toEqual([]);
    const e = await cliRun(['run', 'a red circle', '--size', '64', '--out', out]);
    expect(e.code).toBe(2);
    expect(e.stderr).toMatch(/the embedded generator makes 32×32 images only/);
  });

  it('an unreachable verifier leaves the run incomplete; once it answers, --resume retries exactly the failed calls', async () => {
    const port = await freePort();
    const dir0 = tmpDir();
    const config = path.join(dir0, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({
        backend: 'procedural',
        roles: { verifier: { backend: 'openai', baseURL: `http://127.0.0.1:${port}/v1`, model: 'm', mode: 'yesno', apiKeyEnv: 'RF_FAULT_KEY', maxRetries: 0 } },
        search: { strategy: 'noise', samples: 6, width: 1, depth: 0, seed: 3 },
      }),
    );
    const out = path.join(dir0, 'runs');
    const first = await cliRun(['run', 'a red circle', '--config', config, '--out', out], { RF_FAULT_KEY: 'sk-test' });
    expect(first.code).toBe(3);
    expect(first.stderr).toMatch(/every verifier call failed the same way/);
    const [dir] = runDirs(out);
    expect(runJson(dir!).status).toBe('incomplete');
    const before = events(dir!);
    const generatedBefore = before.filter((e) => e.role === 'generator' && !e.error).map((e) => e.key);
    expect(JSON.stringify(runJson(dir!))).not.toContain('sk-test');

    servers.push(await yesServer(port));
    // spawned, not spawnSync: the verifier answers from this very process
    const again = await new Promise<{ code: number; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [BIN, 'run', '--resume', dir!, '--quiet'], { env: { ...process.env, RF_FAULT_KEY: 'sk-test' } });
      let stderr = '';
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      p.on('exit', (code) => resolve({ code: code ?? -1, stderr }));
    });
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    const run = runJson(dir!);
    expect(run.status).toBe('done');
    expect(run.result.bestScore).not.toBeNull();
    const after = events(dir!).slice(before.length);
    // finished generate calls were replayed, not made again; every verify call was made (they had all failed or not run)
    for (const key of generatedBefore) expect(after.some((e) => e.key === key)).toBe(false);
    expect(after.filter((e) => e.role === 'verifier' && !e.error)).toHaveLength(6);
  });
});

describe('run: a budget of two million images', () => {
  it('starts calling at once, and Ctrl-C stops it: "stopping…", then the resume hint as the last line, exit 130', async () => {
    const out = tmpDir();
    const args = ['run', 'a red circle', '--backend', 'procedural', '--strategy', 'reflection', '--depth', '1000000', '--budget-limit', '3000000', '--out', out];
    const p = cliAsync(args);
    let stderr = '';
    const started = new Promise<void>((resolve) =>
      p.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        // a few rounds in: chains exist, and calls are in flight when the signal comes
        if (/run corrector\s+r3-/.test(stderr)) resolve();
      }),
    );
    await started;
    const rssKb = Number(readFileSync(`/proc/${p.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)![1]);
    const signalled = Date.now();
    p.kill('SIGINT');
    const code = await new Promise<number>((resolve) => p.on('close', (c) => resolve(c ?? -1)));
    expect(code).toBe(130);
    expect(Date.now() - signalled).toBeLessThan(1_000);
    const lines = stderr.trim().split('\n');
    expect(lines).toContain('stopping… (Ctrl-C again to quit at once)');
    expect(lines.at(-1)).toMatch(/^reflectionflow: interrupted: continue with: reflectionflow run --resume /);
    // the plan is counted, not listed: memory does not grow with the budget (a listed plan of 2·10^6 steps is ~100 MB more)
    expect(rssKb).toBeLessThan(300_000);
    const [dir] = runDirs(out);
    expect(runJson(dir!).status).toBe('interrupted');
  });
});

describe('run: one process per run directory', () => {
  async function interruptedRun(): Promise<string> {
    const out = tmpDir();
    // a run killed before it finished: status running, no result
    const r = await cliRun(['run', 'a red circle', '--backend', 'procedural', '--strategy', 'noise', '--samples', '4', '--out', out]);
    expect(r.code).toBe(0);
    const [dir] = runDirs(out);
    const run = runJson(dir!);
    run.status = 'interrupted';
    delete run.result;
    writeFileSync(path.join(dir!, 'run.json'), JSON.stringify(run));
    return dir!;
  }

  it('a second --resume of a run another live process holds is refused: one line, exit 2', async () => {
    const dir = await interruptedRun();
    const holder = spawn('sleep', ['30']);
    try {
      writeFileSync(path.join(dir, '.lock'), JSON.stringify({ pid: holder.pid, host: hostname() }));
      const r = await cliRun(['run', '--resume', dir]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`in use by process ${holder.pid}`));
      expect(runJson(dir).status).toBe('interrupted');
    } finally {
      holder.kill();
    }
  });

  it('a lock left by a dead process is taken over, and released when the run ends', async () => {
    const dir = await interruptedRun();
    const dead = spawn('true');
    await new Promise((r) => dead.on('exit', r));
    writeFileSync(path.join(dir, '.lock'), JSON.stringify({ pid: dead.pid, host: hostname() }));
    const r = await cliRun(['run', '--resume', dir]);
    expect(r.code).toBe(0);
    expect(runJson(dir).status).toBe('done');
    expect(existsSync(path.join(dir, '.lock'))).toBe(false);
  });

  it('two resumes started together: one runs, the other is refused', async () => {
    const dir = await interruptedRun();
    const go = () =>
      new Promise<{ code: number; stderr: string }>((resolve) => {
        const p = cliAsync(['run', '--resume', dir, '--quiet']);
        let stderr = '';
        p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        p.on('exit', (code) => resolve({ code: code ?? -1, stderr }));
      });
    const results = await Promise.all([go(), go()]);
    const codes = results.map((r) => r.code).sort();
    // the loser either found the lock taken, or (when the winner had already finished) the run done
    expect(codes[0]).toBe(0);
    expect(codes[1]).toBe(2);
    expect(results.find((r) => r.code === 2)!.stderr).toMatch(/in use by process|already done/);
  });
});

describe('run --resume refuses what it would ignore', () => {
  it('a prompt, or settings of a new run', async () => {
    const r = await cliRun(['run', 'a blue square', '--resume', '/nonexistent']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--resume continues the run's own prompt; drop the prompt 'a blue square'/);
    const s = await cliRun(['run', '--resume', '/nonexistent', '--samples', '4', '--strategy', 'noise']);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/drop --strategy, --samples/);
  });
});

describe('run --prompts: a batch', () => {
  const records = ['red circle', 'blue square', 'green star', 'yellow cross'].map((p) => {
    const [color, shape] = p.split(' ');
    return JSON.stringify({ tag: 'colors', include: [{ class: shape, count: 1, color }], prompt: `a photo of a ${p}` });
  });
  function setup(): { file: string; config: string } {
    const d = tmpDir();
    const file = path.join(d, 'p.jsonl');
    writeFileSync(file, records.join('\n') + '\n');
    const config = path.join(d, 'c.json');
    writeFileSync(config, JSON.stringify({ backend: FAKE, roles: { generator: { backend: FAKE, latencyMs: 30 } }, search: { samples: 6, width: 2, depth: 3, seed: 2 } }));
    return { file, config };
  }
  const batchOf = (out: string): string => runDirs(out).find((d) => path.basename(d).startsWith('batch-'))!;
  const images = (runDir: string): Record<string, string> =>
    Object.fromEntries(readdirSync(path.join(runDir, 'images')).map((f) => [f, readFileSync(path.join(runDir, 'images', f)).toString('base64')]));

  it('killed mid-way, --resume <batchDir> finishes it with the results of an uninterrupted batch', async () => {
    const { file, config } = setup();
    const clean = tmpDir();
    expect((await cliRun(['run', '--prompts', file, '--config', config, '--out', clean, '--quiet'])).code).toBe(0);
    const cleanBatch = JSON.parse(readFileSync(path.join(batchOf(clean), 'batch.json'), 'utf8'));
    expect(cleanBatch.prompts.map((p: { status: string }) => p.status)).toEqual(['done', 'done', 'done', 'done']);

    const out = tmpDir();
    const child = spawn(process.execPath, [BIN, 'run', '--prompts', file, '--config', config, '--out', out, '--quiet']);
    // kill -9 once the second prompt's run has started
    await new Promise<void>((resolve, reject) => {
      const t0 = Date.now();
      const poll = setInterval(() => {
        const b = runDirs(out).find((d) => path.basename(d).startsWith('batch-'));
        try {
          const rec = b && JSON.parse(readFileSync(path.join(b, 'batch.json'), 'utf8'));
          if (rec && rec.prompts[1].dir) {
            clearInterval(poll);
            child.kill('SIGKILL');
            resolve();
          }
        } catch {
          // batch.json not there yet
        }
        if (Date.now() - t0 > 60_000) reject(new Error('the batch never reached its second prompt'));
      }, 10);
    });
    await new Promise((r) => child.on('exit', r));
    const dir = batchOf(out);
    const killed = JSON.parse(readFileSync(path.join(dir, 'batch.json'), 'utf8'));
    expect(killed.prompts[3].status).toBe('pending');

    const r = await cliRun(['run', '--resume', dir, '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const done = JSON.parse(readFileSync(path.join(dir, 'batch.json'), 'utf8'));
    expect(done.prompts.map((p: { status: string }) => p.status)).toEqual(['done', 'done', 'done', 'done']);
    for (let i = 0; i < 4; i++) {
      const a = path.join(batchOf(clean), cleanBatch.prompts[i].dir);
      const b = path.join(dir, done.prompts[i].dir);
      expect(runJson(b).result.bestId).toBe(runJson(a).result.bestId);
      expect(images(b)).toEqual(images(a));
    }
    expect((await cliRun(['run', '--resume', dir])).stderr).toMatch(/batch .* is already done/);
  });
});

describe('run --stop-at under kill -9', () => {
  it('a run killed in the middle of a wave resumes to the image an uninterrupted run stops at', async () => {
    const d = tmpDir();
    const config = path.join(d, 'c.json');
    writeFileSync(config, JSON.stringify({ backend: FAKE, roles: { generator: { backend: FAKE, latencyMs: 40, concurrency: 2 } } }));
    const args = (seed: number, out: string) => ['run', 'a red circle', '--config', config, '--strategy', 'noise', '--samples', '40', '--depth', '0', '--stop-at', '0.58', '--wave', '4', '--seed', String(seed), '--out', out, '--json', '--quiet'];
    // a seed whose uninterrupted run stops in its third wave or later, so that a kill lands before the stop
    let seed = 0;
    let clean: { stoppedAt: string; imagesGenerated: number; bestId: string } | undefined;
    for (; seed < 20; seed++) {
      const r = await cliRun(args(seed, path.join(d, `clean-${seed}`)));
      expect(r.code).toBe(0);
      const [s] = JSON.parse(r.stdout);
      if (s.stoppedAt && s.imagesGenerated >= 12) {
        clean = s;
        break;
      }
    }
    expect(clean).toBeDefined();
    const out = path.join(d, 'killed');
    const child = spawn(process.execPath, [BIN, ...args(seed, out)]);
    await new Promise<void>((resolve, reject) => {
      const t0 = Date.now();
      const poll = setInterval(() => {
        const [dir] = runDirs(out);
        const n = dir && existsSync(path.join(dir, 'events.jsonl')) ? events(dir).filter((e) => e.role === 'generator').length : 0;
        if (n >= 6) {
          // the second wave is under way
          clearInterval(poll);
          child.kill('SIGKILL');
          resolve();
        }
        if (Date.now() - t0 > 60_000) reject(new Error('the run never reached its second wave'));
      }, 5);
    });
    await new Promise((r) => child.on('exit', r));
    const [dir] = runDirs(out);
    expect(runJson(dir!).status).toBe('running');
    const r = await cliRun(['run', '--resume', dir!, '--json', '--quiet']);
    expect(r.code).toBe(0);
    const [resumed] = JSON.parse(r.stdout);
    expect(resumed.stoppedAt).toBe(clean!.stoppedAt);
    expect(resumed.imagesGenerated).toBe(clean!.imagesGenerated);
    expect(resumed.bestId).toBe(clean!.bestId);
  });
});
