/** `reflectionflow serve` as a process (the built CLI: npm test builds dist/ first). */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, cli, tmpDir } from '../helpers/cli.js';

function startCli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', () => {
      const m = /^(http:\/\/\S+)$/m.exec(stdout);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  return { child, url, out: () => ({ stdout, stderr }) };
}

describe('reflectionflow serve', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`prints the URL on stdout, binds 127.0.0.1, answers, and stops cleanly on ${signal}`, async () => {
      const { child, url, out } = startCli(['--backend', 'procedural', '--port', '0']);
      const base = await url;
      expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      const res = await fetch(`${base}/models`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { data: Array<{ id: string }> };
      expect(body.data.map((m) => m.id)).toContain('reflectionflow-corrector');
      child.kill(signal);
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
      expect(out().stderr).toMatch(/GET \/v1\/models 200/);
      expect(out().stderr).toMatch(/stopped/);
      await expect(fetch(`${base}/models`)).rejects.toThrow();
    });
  }

  it('--api-key-env: requests need the bearer key', async () => {
    const { child, url } = startCli(['--backend', 'procedural', '--port', '0', '--api-key-env', 'RF_SERVE_TEST_KEY', '--quiet'], { RF_SERVE_TEST_KEY: 'k-123' });
    try {
      const base = await url;
      expect((await fetch(`${base}/models`)).status).toBe(401);
      expect((await fetch(`${base}/models`, { headers: { authorization: 'Bearer k-123' } })).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });

  it.each([
    [['--backend', 'procedural', '--port', '70000'], /port/],
    [['--backend', 'procedural', '--api-key-env', 'RF_SERVE_UNSET_VAR'], /RF_SERVE_UNSET_VAR.*not set/],
    [['--backend', 'nope'], /unknown backend 'nope'/],
    [['--config', '/nonexistent/config.yaml'], /config/],
    [['--backend', 'procedural', '--host', '0.0.0.0', '--port', '0'], /--host 0\.0\.0\.0 .*--api-key-env.*--allow-unauthenticated/],
  ])('bad input %j: one line on stderr, exit 2', async (args, message) => {
    const r = await cli(['serve', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('--host 0.0.0.0 --allow-unauthenticated: serves, with a warning; Host must still name this machine', async () => {
    const { child, url, out } = startCli(['--backend', 'procedural', '--host', '0.0.0.0', '--port', '0', '--allow-unauthenticated']);
    try {
      const port = new URL(await url).port;
      expect((await fetch(`http://127.0.0.1:${port}/v1/models`)).status).toBe(200);
      expect(out().stderr).toMatch(/warning: listening on 0\.0\.0\.0 without a key/);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });

  it('a port in use: one line, exit 2', async () => {
    const { child, url } = startCli(['--backend', 'procedural', '--port', '0', '--quiet']);
    try {
      const port = new URL(await url).port;
      const r = await cli(['serve', '--backend', 'procedural', '--port', port]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/in use/);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });

  it('reflectionflow run --config (the docs example: every role on openai against serve) completes a reflection search', async () => {
    const { child, url } = startCli(['--backend', 'procedural', '--port', '0', '--quiet']);
    try {
      const base = await url;
      const dir = tmpDir('rf-serve-');
      const at = { backend: 'openai', baseURL: base };
      const config = {
        roles: {
          generator: { ...at, imageModel: 'reflectionflow-generator', sendSeed: true },
          verifier: { ...at, model: 'reflectionflow-verifier', mode: 'yesno' },
          reflector: { ...at, model: 'reflectionflow-reflector' },
          refiner: { ...at, model: 'reflectionflow-refiner' },
          corrector: { ...at, imageModel: 'reflectionflow-corrector', sendSeed: true },
        },
      };
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
      const r = await cli(['run', 'a photo of two red circles', '--config', path.join(dir, 'config.json'), '--strategy', 'reflection', '--samples', '4', '--width', '2', '--depth', '1', '--out', dir, '--json', '--no-report']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const [summary] = JSON.parse(r.stdout) as Array<{ dir: string; imagesGenerated: number; bestPath: string }>;
      expect(summary!.imagesGenerated).toBe(6);
      expect(readFileSync(summary!.bestPath).subarray(1, 4).toString()).toBe('PNG');
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
});
