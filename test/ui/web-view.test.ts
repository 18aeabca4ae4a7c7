/**
 * The live web view in a real headless Chromium: start a procedural reflection run from the page and watch it, cancel
 * and resume a second, compare two, read an eval folder; keyboard reach and a narrow window. With
 * UI_SCREENSHOTS=docs/ui the screenshots of each state are written there (the README shows them).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerBuiltinBackends } from '../../src/backends/builtin.js';
import type { EvalReport } from '../../src/eval/metrics.js';
import { scalingSvg } from '../../src/eval/output.js';
import { readRunRecord } from '../../src/store/run-store.js';
import { startUi, type RunningUi } from '../../src/ui/server.js';
import { ROOT, tmpDir } from '../helpers/cli.js';
import { launchChromium } from './browser.js';

registerBuiltinBackends();

const PROMPT = 'a photo of a red circle left of a blue square';
const SHOTS = process.env.UI_SCREENSHOTS ? path.resolve(ROOT, process.env.UI_SCREENSHOTS) : tmpDir('rf-ui-shots-');

/** A screenshot of the viewport, as a small palette PNG. */
async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  const png = await page.screenshot();
  writeFileSync(path.join(SHOTS, `${name}.png`), await sharp(png).png({ palette: true, compressionLevel: 9 }).toBuffer());
}

/** The run page's cards as the page shows them: id, score. */
async function cardsOf(page: Page): Promise<string[]> {
  return page.$$eval('.run article.card', (els) => els.map((e) => `${e.getAttribute('data-id')}=${e.getAttribute('data-score')}`).sort());
}

async function startFromForm(page: Page, fields: { strategy: string; engine: string; samples: number; width: number; depth: number; seed: number }): Promise<string> {
  await page.goto(`${ui.url}#/`);
  await page.fill('#f-prompt', PROMPT);
  await page.selectOption('#f-strategy', fields.strategy);
  await page.waitForSelector(`#f-engine option[value="${fields.engine}"]`, { state: 'attached' });
  await page.selectOption('#f-engine', fields.engine);
  for (const k of ['samples', 'width', 'depth', 'seed'] as const) await page.fill(`#f-${k}`, String(fields[k]));
  await page.click('#f-start');
  await page.waitForURL(/#\/run\//);
  return decodeURIComponent(page.url().split('#/run/')[1]!);
}

let ui: RunningUi;
let browser: Browser;
let page: Page;
let runs: string;

describe('web view in Chromium', () => {
  beforeAll(async () => {
    runs = tmpDir('rf-ui-runs-');
    const configs = tmpDir('rf-ui-configs-');
    // a procedural backend whose every call takes 300 ms: the run lasts seconds, long enough to watch it fill in
    writeFileSync(path.join(configs, 'procedural-slow.json'), JSON.stringify({ backend: 'procedural', options: { latencyMs: 300 } }));
    const evals = tmpDir('rf-ui-evals-');
    writeEvalFixture(path.join(evals, 'eval-20260101-000000'));
    ui = await startUi({ runs, evals, configs, port: 0 });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  });
  afterAll(async () => {
    await browser?.close();
    await ui?.close();
  });

  let watched = '';
  let cancelled = '';

  it('starts a procedural reflection run from the page and shows it as it happens, then its final choice', async () => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    watched = await startFromForm(page, { strategy: 'reflection', engine: 'config:procedural-slow.json', samples: 4, width: 2, depth: 3, seed: 7 });
    // the first pool image is on screen (loaded) while the run still runs
    const first = await page.waitForSelector('.pool-grid article.card img', { timeout: 30_000 });
    await first.evaluate((img: HTMLImageElement) => (img.complete ? null : new Promise((r) => img.addEventListener('load', r, { once: true }))));
    expect(await first.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBeGreaterThan(0);
    expect(await page.textContent('.runhead [data-status]')).toBe('running');
    expect((await readRunRecord(path.join(runs, watched))).status).toBe('running');
    await shot(page, 'ui-live');

    // a reflection and a refined prompt written on a chain image, and a corrected image from it
    await page.waitForSelector('.chains .sec.reflection li, .chains .sec.reflection p', { timeout: 30_000 });
    await page.waitForSelector('.chains .lcell article.card[data-id^="r1-c"]', { timeout: 30_000 });
    // the final choice: the one run.json names
    await page.waitForSelector('#final .badge.chosen', { timeout: 60_000 });
    expect(await page.textContent('.runhead [data-status]')).toBe('done');
    const run = await readRunRecord(path.join(runs, watched));
    expect(run.status).toBe('done');
    expect(await page.textContent('#final code.cid')).toBe(run.result!.bestId);
    expect(await page.$$eval('.pool-grid article.card', (els) => els.length)).toBe(4);
    expect(await page.$$eval('.chains article.card', (els) => els.length)).toBe(2 * 4); // 2 chains × (head + 3 rounds)
    await page.locator('.chains').scrollIntoViewIfNeeded();
    await shot(page, 'ui-reflection');
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'ui-done');
    expect(errors).toEqual([]);
  });

  it('cancels a second run (it stays resumable), resumes it, and ends where an uninterrupted run ends', async () => {
    cancelled = await startFromForm(page, { strategy: 'reflection', engine: 'config:procedural-slow.json', samples: 4, width: 2, depth: 3, seed: 7 });
    await page.waitForSelector('.pool-grid article.card img', { timeout: 30_000 });
    await page.click('text=Cancel run');
    await page.waitForSelector('.runhead [data-status="interrupted"]', { timeout: 30_000 });
    expect((await readRunRecord(path.join(runs, cancelled))).status).toBe('interrupted');
    expect(await page.isVisible('text=Resume run')).toBe(true);
    await shot(page, 'ui-cancelled');

    await page.click('text=Resume run');
    await page.waitForSelector('#final .badge.chosen', { timeout: 60_000 });
    const [a, b] = await Promise.all([readRunRecord(path.join(runs, watched)), readRunRecord(path.join(runs, cancelled))]);
    expect(b.status).toBe('done');
    expect(b.result!.bestId).toBe(a.result!.bestId);
    expect(b.candidates.map((c) => [c.id, c.evaluation?.score]).sort()).toEqual(a.candidates.map((c) => [c.id, c.evaluation?.score]).sort());

    // the page replays the finished run from its files: the same cards after a reload
    const before = await cardsOf(page);
    await page.reload();
    await page.waitForSelector('#final .badge.chosen');
    await page.waitForFunction(() => document.querySelector('.run')?.getAttribute('data-stream') === 'ended');
    expect(await cardsOf(page)).toEqual(before);
  });

  it('compares two runs side by side (noise and reflection, one prompt and seed)', async () => {
    const noise = await startFromForm(page, { strategy: 'noise', engine: 'backend:procedural', samples: 4, width: 2, depth: 3, seed: 7 });
    await page.waitForSelector('#final .badge.chosen', { timeout: 60_000 });
    await page.goto(`${ui.url}#/`);
    await page.check(`tr[data-run="${noise}"] input[type=checkbox]`);
    await page.check(`tr[data-run="${watched}"] input[type=checkbox]`);
    await page.click('#compare');
    await page.waitForSelector('[data-side=left] .hero-card.final');
    await page.waitForSelector('[data-side=right] .hero-card.final');
    const strategies = await page.$$eval('.compare .strategy', (els) => els.map((e) => e.textContent));
    expect(strategies.sort()).toEqual(['noise', 'reflection']);
    expect(await page.$$eval('[data-side=left] .chains article.card', (els) => els.length) + (await page.$$eval('[data-side=right] .chains article.card', (els) => els.length))).toBe(8);
    await shot(page, 'ui-compare');
  });

  it('reaches every control by keyboard', async () => {
    await page.goto(`${ui.url}#/`);
    await page.waitForSelector('table.runs tbody tr');
    await page.check('table.runs tbody tr:nth-child(1) input[type=checkbox]');
    await page.check('table.runs tbody tr:nth-child(2) input[type=checkbox]');
    await page.focus('body');
    const reached = new Set<string>();
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      reached.add(await page.evaluate(() => {
        const el = document.activeElement as HTMLElement | null;
        return el ? el.id || `${el.tagName.toLowerCase()}${el.getAttribute('href') ? `[${el.getAttribute('href')!.split('/')[1]}]` : ''}${el.getAttribute('type') ? `:${el.getAttribute('type')}` : ''}` : '';
      }));
    }
    for (const want of ['f-prompt', 'f-strategy', 'f-engine', 'f-samples', 'f-width', 'f-depth', 'f-seed', 'f-start', 'input:checkbox', 'a[run]', 'compare', 'a[evals]']) {
      expect([...reached], want).toContain(want);
    }
    // a run started with the keyboard alone
    await page.focus('#f-prompt');
    await page.keyboard.type(PROMPT);
    await page.focus('#f-start');
    await page.keyboard.press('Enter');
    await page.waitForURL(/#\/run\//);
  });

  it('is readable on a narrow window: nothing wider than the screen but the chains, which scroll', async () => {
    await page.setViewportSize({ width: 390, height: 800 });
    for (const hash of [`#/run/${watched}`, '#/', `#/compare/${watched}/${cancelled}`]) {
      await page.goto(`${ui.url}${hash}`);
      await page.waitForSelector('.runhead, table.runs');
      await page.waitForTimeout(300); // one more stream poll: the page settles
      expect(await page.evaluate(() => document.documentElement.scrollWidth), hash).toBeLessThanOrEqual(390);
    }
    await page.goto(`${ui.url}#/run/${watched}`);
    await page.waitForSelector('#final .badge.chosen');
    await shot(page, 'ui-narrow');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('shows an eval results folder as its table and scaling plot', async () => {
    await page.goto(`${ui.url}#/evals`);
    await page.click('text=eval-20260101-000000');
    await page.waitForSelector('table.evaltable tbody tr');
    expect(await page.$$eval('table.evaltable tbody tr', (els) => els.length)).toBe(6);
    expect(await page.textContent('table.evaltable tbody tr:last-child')).toContain('0.650');
    const plot = page.locator('figure.plot img');
    await plot.evaluate((img: HTMLImageElement) => (img.complete ? null : new Promise((r) => img.addEventListener('load', r, { once: true }))));
    expect(await plot.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBeGreaterThan(0);
    await shot(page, 'ui-eval');
  });
});

/** An eval results folder as `reflectionflow eval` writes it: results.json and scaling.svg. */
function writeEvalFixture(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const tags = ['position', 'counting'];
  const cells = (['noise', 'reflection'] as const).flatMap((strategy, s) =>
    [2, 4, 8].map((budget, b) => {
      const acc = 0.3 + 0.1 * b + 0.15 * s;
      return {
        strategy,
        budget,
        categories: Object.fromEntries(tags.map((t) => [t, { correct: Math.round(acc * 40), total: 40, accuracy: Math.round(acc * 40) / 40 }])),
        overall: Math.round(acc * 40) / 40,
        images: budget * 40,
        meanImages: budget,
        meanVlmCalls: budget,
        meanPrice: null,
      };
    }),
  );
  const report: EvalReport = { strategies: ['noise', 'reflection'], budgets: [2, 4, 8], tags, cells, samples: [], wallMs: 1000 };
  writeFileSync(path.join(dir, 'results.json'), JSON.stringify({ setup: { prompts: 'split:test', strategies: report.strategies, budgets: report.budgets }, cells, tags, verifier: null, wallMs: 1000 }));
  writeFileSync(path.join(dir, 'scaling.svg'), scalingSvg(report, 'fixture: overall vs budget'));
}
