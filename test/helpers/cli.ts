import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = path.join(ROOT, 'bin/reflectionflow.js');
export const FAKE = `module:${path.join(ROOT, 'test/fixtures/fake-backend.mjs')}`;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run the built CLI (npm test builds dist/ first). Never spawnSync: a test that blocks on a child stalls its vitest
 * worker, whose RPC then times out on a loaded machine.
 */
export function cli(args: string[], cwd = ROOT, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return cliRun(args, env, cwd);
}

export function cliAsync(args: string[], cwd = ROOT) {
  return spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

export function tmpDir(prefix = 'rf-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * Run the built CLI without blocking this process: a test that waits on a long child with spawnSync stalls its
 * vitest worker, whose RPC then times out on a loaded machine.
 */
export function cliRun(args: string[], env: NodeJS.ProcessEnv = {}, cwd = ROOT): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
