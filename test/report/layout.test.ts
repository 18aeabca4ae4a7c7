import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProceduralBackend } from '../../src/backends/procedural/index.js';
import { runSearch } from '../../src/run.js';
import { tmpDir } from '../helpers/cli.js';
import { launchChromium } from '../ui/browser.js';

/** report.html of a procedural reflection run of this depth (its rounds: depth + 1 columns). */
async function reportOf(depth: number): Promise<string> {
  const o = await runSearch({
    prompt: 'a red circle to the right of a blue square',
    params: { strategy: 'reflection', samples: 4, width: 2, depth, seed: 3, chainHead: 'latest' },
    roles: createProceduralBackend(),
    outDir: tmpDir('rf-report-layout-'),
  });
  return readFileSync(path.join(o.dir, 'report.html'), 'utf8');
}

interface Box {
  left: number;
  right: number;
}

/** Where each card of the last round is, and the box of the scrolling container it is in (if any), after scrolling it into view. */
async function lastRoundBoxes(page: Page): Promise<Array<{ card: Box; scroller: Box | null; chainHead: Box }>> {
  return page.evaluate(() => {
    const box = (e: Element) => {
      const r = e.getBoundingClientRect();
      return { left: r.left, right: r.right };
    };
    const last = Math.max(...[...document.querySelectorAll('.tree .card')].map((c) => Number(/^c-r(\d+)-/.exec(c.id)?.[1] ?? 0)));
    return [...document.querySelectorAll(`.tree .card[id^="c-r${last}-"]`)].map((card) => {
      let scroller: Element | null = card.parentElement;
      while (scroller && !(['auto', 'scroll'].includes(getComputedStyle(scroller).overflowX) && scroller.scrollWidth > scroller.clientWidth)) scroller = scroller.parentElement;
      card.scrollIntoView({ block: 'nearest', inline: 'nearest' });
      const row = card.closest('.cell')!;
      let head = row.previousElementSibling;
      while (head && !head.classList.contains('rowhead')) head = head.previousElementSibling;
      return { card: box(card), scroller: scroller && scroller !== document.documentElement ? box(scroller) : null, chainHead: box(head!) };
    });
  });
}

describe('report.html at 1280 × 800', () => {
  let browser: Browser;
  let page: Page;
  beforeAll(async () => {
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('shows every round of a depth-4 run without any scrolling sideways', async () => {
    await page.setContent(await reportOf(4));
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth)).toBe(true);
    expect(await page.$$eval('.tree .colhead', (els) => els.length)).toBe(5);
    const boxes = await lastRoundBoxes(page);
    expect(boxes).toHaveLength(2);
    for (const b of boxes) {
      expect(b.scroller).toBeNull();
      expect(b.card.left).toBeGreaterThanOrEqual(0);
      expect(b.card.right).toBeLessThanOrEqual(1280);
    }
  });

  it('a depth-6 run: the page stays 1280 wide; the rounds scroll inside the tree, the last one fully into view, the chain names with it', async () => {
    await page.setContent(await reportOf(6));
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth)).toBe(true);
    const boxes = await lastRoundBoxes(page);
    expect(boxes).toHaveLength(2);
    for (const b of boxes) {
      const within = b.scroller ?? { left: 0, right: 1280 };
      expect(b.card.left).toBeGreaterThanOrEqual(within.left - 0.5);
      expect(b.card.right).toBeLessThanOrEqual(Math.min(within.right, 1280) + 0.5);
      // the chain's name stays beside its cards, not scrolled away with round 0
      expect(b.chainHead.left).toBeGreaterThanOrEqual(within.left - 0.5);
      expect(b.chainHead.right).toBeLessThanOrEqual(b.card.left + 0.5);
    }
  });
});
