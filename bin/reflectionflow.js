#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

if (!existsSync(new URL('../dist/cli/main.js', import.meta.url))) {
  // a fresh clone: `npm ci` runs no install scripts (.npmrc), so the first start builds dist/ once
  process.stderr.write('reflectionflow: building dist/ (the first start after a fresh install, about 15 s)\n');
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  const root = fileURLToPath(new URL('..', import.meta.url));
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: ['ignore', 2, 2] });
  if (r.status !== 0) {
    process.stderr.write('reflectionflow: the build failed; `npm run build` shows why\n');
    process.exit(1);
  }
}
const { main } = await import('../dist/cli/main.js');
main(process.argv).then((code) => {
  process.exitCode = code;
});
