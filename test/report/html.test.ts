import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.js';
import { renderReport, writeReport } from '../../src/report/html.js';
import type { RunRecord } from '../../src/store/types.js';
import { EVIL, sampleImages, sampleRun, shapePng } from './fixture.js';

let run: RunRecord;
let images: Map<string, Uint8Array>;
let html: string;

beforeAll(async () => {
  run = sampleRun();
  images = await sampleImages(run);
  html = renderReport(run, images);
  if (process.env.REPORT_SAMPLE) await fsp.writeFile(process.env.REPORT_SAMPLE, html);
});

/** The article element rendered for one candidate. */
function card(id: string): string {
  const at = html.indexOf(`id="c-${id}"`);
  expect(at).toBeGreaterThanOrEqual(0);
  const open = html.lastIndexOf('<article', at);
  return html.slice(open, html.indexOf('</article>', open));
}

describe('renderReport', () => {
  it('is one HTML document with every candidate, its seed and its image inline', () => {
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html.trimEnd().endsWith('</html>')).toBe(true);
    for (const c of run.candidates) {
      expect(html).toContain(`id="c-${c.id}"`);
      expect(card(c.id)).toContain(`seed ${c.seed}`);
      expect(card(c.id)).toContain('src="data:image/png;base64,');
    }
    const b64 = Buffer.from(images.get('r0-i001-s12')!).toString('base64');
    expect(html).toContain(`data:image/png;base64,${b64}`);
  });

  it('shows the header: prompt, strategy, params, status, budget, times and backends', () => {
    expect(html).toContain('a red circle to the right of a blue square');
    expect(html).toContain('reflection');
    for (const [k, v] of [['samples', 4], ['width', 2], ['depth', 2], ['seed', 7]] as const) {
      expect(html).toContain(`<span>${k}</span><b>${v}</b>`);
    }
    expect(html).toContain('<span class="status done">done</span>');
    expect(html).toMatch(/8 <span class="muted">\/ 8 images/);
    expect(html).toContain('12.3 s'); // wall time
    expect(html).toContain('8.40 s'); // verify time
    for (const b of ['shapeworld', 'fake-verifier', 'fake-reflector', 'fake-refiner', 'shapeworld-edit']) expect(html).toContain(`<code>${b}</code>`);
  });

  it('highlights the chosen image, marks each chain best and each failed verification', () => {
    expect(card('r2-c0-s31')).toMatch(/class="card chosen"/);
    expect(card('r2-c0-s31')).toContain('★ chosen');
    expect(card('r2-c1-s32')).toMatch(/class="card cbest"/);
    expect(card('r2-c1-s32')).toContain('◆ chain best');
    expect(card('r1-c0-s21')).not.toContain('chain best');
    expect(card('r1-c1-s22')).toMatch(/class="card failed"/);
    expect(card('r1-c1-s22')).toContain('verifier timed out after 60 s');
    // the hero panel shows the chosen image large with its score
    const hero = html.slice(html.indexOf('<section class="hero">'), html.indexOf('</section>', html.indexOf('<section class="hero">')));
    expect(hero).toContain('r2-c0-s31');
    expect(hero).toContain('0.93');
    expect(hero).toMatch(/width="320"/);
  });

  it('shows labels, rubric aspects, reflections as lists and refined prompts', () => {
    expect(card('r0-i001-s12')).toContain('<span class="pill no">no</span>');
    expect(card('r0-i002-s13')).toContain('<span class="pill yes">yes</span>');
    const rubric = card('r2-c1-s32');
    expect(rubric).toContain('spatial &lt;relation&gt;');
    expect(rubric).toContain('<span class="score">0.78</span>');
    expect(rubric).toContain('<b>4</b>');
    expect(rubric).toMatch(/class="aspects"/);
    // the reflection the image was corrected with, as list items
    expect(card('r1-c0-s21')).toContain('<h4>Corrected with</h4><ul class="refl"><li>Make the circle larger</li><li>Move it to the centre</li></ul>');
    // what was written from an image: reflection + refined prompt
    const head = card('r0-i002-s13');
    expect(head).toContain('Reflection on this image');
    expect(head).toContain('a large red circle, centred, right of a blue square');
    expect(card('r1-c1-s22')).toContain('<li>Sharpen the edges</li>');
    // the refined prompt shown on the next image is marked as refined
    expect(card('r1-c0-s21')).toContain('refined</span>');
  });

  it('lays the tree out by chain rows and round columns, with the unkept pool apart', () => {
    expect(html).toContain('grid-template-columns: 132px repeat(3,');
    const tree = html.slice(html.indexOf('<div class="tree"'), html.indexOf('<div class="pool">'));
    const order = ['Chain 0', 'r0-i002-s13', 'r1-c0-s21', 'r2-c0-s31', 'Chain 1', 'r0-i000-s11', 'r1-c1-s22', 'r2-c1-s32'].map((s) => tree.indexOf(s));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    const pool = html.slice(html.indexOf('<div class="pool">'));
    expect(pool).toContain('r0-i001-s12');
    expect(pool).toContain('r0-i003-s14');
    expect(pool.indexOf('r0-i001-s12')).toBeLessThan(pool.indexOf('r0-i003-s14')); // best first
    expect(tree).not.toContain('r0-i001-s12');
  });

  it('upscales small images with pixelated rendering instead of re-encoding', () => {
    expect(html).toContain('image-rendering:pixelated');
    expect(card('r0-i003-s14')).toMatch(/<img class="zoom px"/);
  });

  it('escapes everything that comes from models', () => {
    expect(html).not.toContain(EVIL);
    expect(html).not.toContain('<img src=x');
    expect(html).toContain('&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;');
    expect(html.match(/<script/g)).toHaveLength(1); // ours only
    const evilRun = { ...sampleRun(), prompt: EVIL, id: '"><script>x</script>' };
    const out = renderReport(evilRun, images);
    expect(out).not.toContain(EVIL);
    expect(out).not.toContain('<script>x');
    expect(out.match(/<script/g)).toHaveLength(1);
    expect(out).toContain('<title>ReflectionFlow — &lt;script&gt;');
  });

  it('needs no network: no remote references, and a policy that forbids them', () => {
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/\/\/[a-z0-9.-]+\.[a-z]{2,}\//i); // protocol-relative
    expect(html).not.toMatch(/@import|url\(\s*['"]?(?!data:)/i);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).not.toMatch(/<script[^>]+src=/i);
    for (const m of html.matchAll(/\ssrc="([^"]*)"/g)) expect(m[1]!.startsWith('data:image/')).toBe(true);
    expect(html).toMatch(/Content-Security-Policy" content="default-src &#39;none&#39;; img-src data:;/);
  });

  it('renders a run that has not finished and images that are missing', () => {
    const partial: RunRecord = { ...sampleRun(), status: 'running' };
    delete partial.result;
    partial.candidates = partial.candidates.filter((c) => c.round < 2);
    const out = renderReport(partial, new Map([...images].filter(([id]) => id !== 'r1-c0-s21')));
    expect(out).toContain('<span class="status running">running</span>');
    expect(out).toContain('run not finished');
    expect(out).toContain('no image');
    expect(out).toContain('no image this round');
    // the best so far is chosen from the scores
    expect(out).toMatch(/<article class="card chosen" id="c-r1-c0-s21"/);
    const empty = renderReport({ ...partial, candidates: [] }, new Map());
    expect(empty).toContain('No chains yet.');
  });
});

describe('writeReport', () => {
  const dirs: string[] = [];
  const tmpRun = async (record?: unknown): Promise<string> => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'rf-report-'));
    dirs.push(dir);
    if (record !== undefined) await fsp.writeFile(path.join(dir, 'run.json'), typeof record === 'string' ? record : JSON.stringify(record));
    return dir;
  };
  afterEach(async () => {

    for (const d of dirs.splice(0)) await fsp.rm(d, { recursive: true, force: true });
  });

  it('writes report.html over the old one, leaving no temp file', async () => {
    const dir = await tmpRun(run);
    await fsp.mkdir(path.join(dir, 'images'));
    for (const [id, png] of images) await fsp.writeFile(path.join(dir, 'images', `${id}.png`), png);
    await fsp.writeFile(path.join(dir, 'report.html'), 'old');
    const file = await writeReport(dir);
    expect(file).toBe(path.join(path.resolve(dir), 'report.html'));
    expect(await fsp.readFile(file, 'utf8')).toBe(renderReport(run, images));
    expect((await fsp.readdir(dir)).sort()).toEqual(['images', 'report.html', 'run.json']); // no temp file left
  });

  it('shrinks large images before embedding them and tolerates missing ones', async () => {
    const record = sampleRun();
    const dir = await tmpRun(record);
    await fsp.mkdir(path.join(dir, 'images'));
    await fsp.writeFile(path.join(dir, 'images', 'r2-c0-s31.png'), await shapePng(800, [255, 0, 0], 200));
    const out = await fsp.readFile(await writeReport(dir), 'utf8');
    const m = out.match(/<img class="zoom" src="data:image\/png;base64,([^"]+)" width="320"/);
    expect(m).not.toBeNull();
    const meta = await sharp(Buffer.from(m![1]!, 'base64')).metadata();
    expect(Math.max(meta.width!, meta.height!)).toBe(512);
    expect(out).toContain('no image');
  });

  it('errors clearly, naming the path, on a missing or invalid run.json', async () => {
    const missing = await tmpRun();
    const err = await writeReport(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toContain(path.join(path.resolve(missing), 'run.json'));
    expect((err as Error).message).not.toContain('\n');
    expect(existsSync(path.join(missing, 'report.html'))).toBe(false);

    for (const bad of ['{ not json', JSON.stringify({ version: 1, id: 'x' }), JSON.stringify([1, 2])]) {
      const dir = await tmpRun(bad);
      const e = await writeReport(dir).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(UserError);
      expect((e as Error).message).toContain(path.join(path.resolve(dir), 'run.json'));
      expect((e as Error).message).not.toContain('\n');
    }
  });
});

describe('a noise run', () => {
  it('shows its pool as best-of-N: no width/depth chips, no chains, no chain heads', async () => {
    const base = sampleRun();
    const noiseRun: RunRecord = {
      ...base,
      params: { ...base.params, strategy: 'noise', samples: 8, width: 2, depth: 4 },
      candidates: base.candidates.filter((c) => c.round === 0).map((c) => ({ ...c, chain: null })),
      ...(base.result ? { result: { ...base.result, chains: [] } } : {}),
    };
    const page = renderReport(noiseRun, await sampleImages(noiseRun));
    expect(page).toContain('<span>pool</span><b>16</b>');
    expect(page).not.toContain('<span>width</span>');
    expect(page).not.toContain('No chains yet');
    expect(page).not.toContain('became chain heads');
    expect(page).toContain('Noise pool (best-of-N)');
  });
});
