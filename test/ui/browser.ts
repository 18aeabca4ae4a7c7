import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/**
 * A headless Chromium for the web view's tests: Debian's `chromium` (.ci/run installs it), or $CHROMIUM_PATH. Missing,
 * the tests fail — they never skip.
 */
export async function launchChromium(): Promise<Browser> {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => !!p);
  const executablePath = candidates.find((p) => existsSync(p));
  if (!executablePath) throw new Error(`no Chromium at ${candidates.join(', ')}: apt-get install chromium (.ci/run installs it) or set CHROMIUM_PATH`);
  // --no-sandbox: the suite runs as root in CI, where Chromium's sandbox refuses to start
  return chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'], timeout: 60_000 });
}
