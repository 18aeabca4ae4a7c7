/**
 * The run report: one self-contained HTML page (inline CSS, images as data URIs, no network) that shows the
 * search as it happened — the noise pool, the chains round by round with every reflection and refined prompt,
 * the scores, and the chosen image.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { UserError, errorMessage } from '../core/errors.js';
import { builtInNote } from '../core/prices.js';
import { ROLES, type Role } from '../core/strategies.js';
import type { Candidate, Reflection } from '../core/types.js';
import type { RunRecord } from '../store/types.js';
import { writeFileAtomic } from '../store/atomic.js';
import { readRunRecord } from '../store/run-store.js';
import { REPORT_CSS } from './style.js';
import { dataUri, esc, formatMs, formatScore, sniffImage } from './format.js';

export const REPORT_FILE = 'report.html';

/** Display box of a chain-cell thumbnail and of the chosen image, in CSS px. */
const THUMB_PX = 168;
/** Narrowest round column: five columns (depth 4) fit beside the chain names at a 1280-px window; more scroll. */
const ROUND_MIN_PX = 180;
const POOL_THUMB_PX = 112;
const HERO_PX = 320;
/** writeReport shrinks images larger than this (either side) before embedding them. */
const EMBED_MAX_PX = 512;

const CHAIN_COLORS = ['#2f6fde', '#e8590c', '#2b8a3e', '#ae3ec9', '#0c8599', '#c2255c', '#5c940d', '#1864ab'];

/** Opens a clicked thumbnail large. The page is complete without it. No run data is placed in the script. */
const SCRIPT = `document.documentElement.classList.add('js');
const lb=document.getElementById('lightbox'),li=lb.querySelector('img'),lc=lb.querySelector('p');
document.addEventListener('click',e=>{const t=e.target;
if(t instanceof HTMLImageElement&&t.classList.contains('zoom')){li.src=t.src;li.className=t.classList.contains('px')?'px':'';lc.textContent=t.alt;lb.hidden=false;}
else if(!lb.hidden&&lb.contains(t)){lb.hidden=true;}});
document.addEventListener('keydown',e=>{if(e.key==='Escape')lb.hidden=true;});`;

// ---------------------------------------------------------------------------------------------------------------
// model

interface View {
  run: RunRecord;
  images: Map<string, Uint8Array>;
  byId: Map<string, Candidate>;
  bestId: string | null;
  chainBest: Set<string>;
  chains: Array<{ chain: number; members: Candidate[] }>;
  unkept: Candidate[];
  rounds: number;
  /** children by parent id */
  children: Map<string, Candidate[]>;
}

/** Sort key: higher is better; failed or unverified images rank last. */
function rankScore(c: Candidate): number {
  if (c.verifyError || !c.evaluation || !Number.isFinite(c.evaluation.score)) return Number.NEGATIVE_INFINITY;
  return c.evaluation.score;
}

function bestOf(cs: Candidate[]): Candidate | undefined {
  let best: Candidate | undefined;
  for (const c of cs) if (!best || rankScore(c) > rankScore(best)) best = c;
  return best;
}

function buildView(run: RunRecord, images: Map<string, Uint8Array>): View {
  const candidates = Array.isArray(run.candidates) ? run.candidates : [];
  const byId = new Map(candidates.map((c) => [c.id, c]));
  const bestId = run.result?.bestId ?? bestOf(candidates)?.id ?? null;

  const chainIdx = new Set<number>();
  for (const c of candidates) if (c.chain !== null && c.chain !== undefined) chainIdx.add(c.chain);
  for (const s of run.result?.chains ?? []) chainIdx.add(s.chain);
  const chains = [...chainIdx]
    .sort((a, b) => a - b)
    .map((chain) => ({
      chain,
      members: candidates.filter((c) => c.chain === chain).sort((a, b) => a.round - b.round || a.id.localeCompare(b.id)),
    }));

  const chainBest = new Set<string>();
  for (const { chain, members } of chains) {
    const summary = run.result?.chains?.find((s) => s.chain === chain);
    const id = summary?.bestId ?? bestOf(members)?.id;
    if (id) chainBest.add(id);
  }

  const unkept = candidates
    .filter((c) => c.chain === null || c.chain === undefined)
    .sort((a, b) => rankScore(b) - rankScore(a) || a.id.localeCompare(b.id));

  const maxRound = candidates.reduce((m, c) => Math.max(m, c.round), 0);
  const planned = run.params?.strategy === 'noise' ? 0 : (run.params?.depth ?? 0);
  const rounds = Math.max(maxRound, planned) + 1;

  const children = new Map<string, Candidate[]>();
  for (const c of candidates) {
    if (!c.parentId) continue;
    const list = children.get(c.parentId) ?? [];
    list.push(c);
    children.set(c.parentId, list);
  }
  return { run, images, byId, bestId, chainBest, chains, unkept, rounds, children };
}

// ---------------------------------------------------------------------------------------------------------------
// pieces

function imgTag(v: View, c: Candidate | undefined, box: number, extraClass = ''): string {
  const bytes = c ? v.images.get(c.id) : undefined;
  const info = bytes ? sniffImage(bytes) : null;
  if (!c || !bytes || !info) {
    return `<div class="noimg ${extraClass}" style="width:${box}px;height:${box}px"><span>no image</span></div>`;
  }
  let w = box;
  let h = box;
  if (info.width && info.height) {
    const scale = box / Math.max(info.width, info.height);
    w = Math.max(1, Math.round(info.width * scale));
    h = Math.max(1, Math.round(info.height * scale));
  }
  // small images (ShapeWorld: 32–64 px) are enlarged by the browser, crisp, rather than re-encoded
  const pixelated = info.width !== undefined && info.width < w;
  const cls = ['zoom', pixelated ? 'px' : '', extraClass].filter(Boolean).join(' ');
  const size = info.width && info.height ? ` · ${info.width}×${info.height}` : '';
  return `<img class="${cls}" src="${dataUri(bytes, info.mime)}" width="${w}" height="${h}" alt="${esc(c.id + size)}">`;
}

function labelPill(label: 'yes' | 'no' | undefined): string {
  if (!label) return '';
  return `<span class="pill ${label === 'yes' ? 'yes' : 'no'}">${label}</span>`;
}

function aspectsList(aspects: Record<string, number> | undefined): string {
  if (!aspects) return '';
  const entries = Object.entries(aspects);
  if (!entries.length) return '';
  const rows = entries
    .map(([name, value]) => {
      const pct = Number.isFinite(value) ? Math.max(0, Math.min(100, value * 10)) : 0;
      return `<li><span class="an">${esc(name)}</span><span class="bar"><i style="width:${pct.toFixed(0)}%"></i></span><b>${esc(formatScore(value))}</b></li>`;
    })
    .join('');
  return `<ul class="aspects">${rows}</ul>`;
}

function badges(v: View, c: Candidate): string {
  const out: string[] = [];
  if (c.id === v.bestId) out.push('<span class="badge chosen">★ chosen</span>');
  if (v.chainBest.has(c.id) && c.chain !== null) out.push('<span class="badge cbest">◆ chain best</span>');
  if (c.verifyError) out.push('<span class="badge failed">✕ verify failed</span>');
  return out.length ? `<div class="badges">${out.join('')}</div>` : '';
}

function cardClasses(v: View, c: Candidate, base: string): string {
  const cls = [base];
  if (c.id === v.bestId) cls.push('chosen');
  else if (v.chainBest.has(c.id) && c.chain !== null) cls.push('cbest');
  if (c.verifyError) cls.push('failed');
  return cls.join(' ');
}

function scoreLine(c: Candidate): string {
  const e = c.evaluation;
  if (c.verifyError) return `<div class="scoreline"><span class="score none">—</span></div>`;
  if (!e) return `<div class="scoreline"><span class="score none">not verified</span></div>`;
  return `<div class="scoreline"><span class="score">${esc(formatScore(e.score))}</span>${labelPill(e.label)}</div>`;
}

function reflectionBlock(r: Reflection): string {
  const items = Array.isArray(r.items) ? r.items.filter((s) => String(s).trim() !== '') : [];
  if (items.length) return `<ul class="refl">${items.map((s) => `<li>${esc(s)}</li>`).join('')}</ul>`;
  return `<p class="refl-text">${esc(r.text || '(empty reflection)')}</p>`;
}

function sameReflection(a: Reflection | undefined, b: Reflection | undefined): boolean {
  if (!a || !b) return false;
  return a.text === b.text && JSON.stringify(a.items) === JSON.stringify(b.items);
}

function promptBlock(v: View, c: Candidate): string {
  if (c.prompt === v.run.prompt) {
    return `<div class="sec"><h4>Prompt</h4><p class="muted">original prompt</p></div>`;
  }
  return `<div class="sec"><h4>Prompt <span class="tag refined">refined</span></h4><p class="prompt">${esc(c.prompt)}</p></div>`;
}

function outputsBlock(v: View, c: Candidate): string {
  if (!c.reflectionOut && c.refinedPrompt === undefined) return '';
  const kids = v.children.get(c.id) ?? [];
  // collapsed when the next image in the chain already shows the same reflection and prompt
  const shown = kids.some(
    (k) => (!c.reflectionOut || sameReflection(k.reflection, c.reflectionOut)) && (c.refinedPrompt === undefined || k.prompt === c.refinedPrompt),
  );
  const parts: string[] = [];
  if (c.reflectionOut) parts.push(`<h4>Reflection on this image</h4>${reflectionBlock(c.reflectionOut)}`);
  if (c.refinedPrompt !== undefined) {
    const same = c.refinedPrompt === c.prompt;
    parts.push(`<h4>Refined prompt${same ? ' <span class="tag">unchanged</span>' : ''}</h4><p class="prompt">${esc(c.refinedPrompt)}</p>`);
  }
  const what = [c.reflectionOut ? 'reflection' : '', c.refinedPrompt !== undefined ? 'refined prompt' : ''].filter(Boolean).join(' + ');
  return `<details class="out"${shown ? '' : ' open'}><summary>Written from it: ${what}</summary>${parts.join('')}</details>`;
}

function chainCard(v: View, c: Candidate): string {
  const e = c.evaluation;
  const from = c.parentId
    ? `<div class="from">${c.origin === 'correct' ? 'corrected' : 'regenerated'} from <a href="#${esc(anchor(c.parentId))}"><code>${esc(c.parentId)}</code></a></div>`
    : `<div class="from">${c.round === 0 ? 'noise pool' : esc(c.origin)}</div>`;
  const parts = [
    badges(v, c),
    // square, at most THUMB_PX, narrower in a narrow column (style.ts)
    `<figure class="thumb fit" style="max-height:${THUMB_PX}px">${imgTag(v, c, THUMB_PX)}</figure>`,
    `<div class="idline"><code class="cid">${esc(c.id)}</code><span class="seed">seed ${esc(c.seed)}</span></div>`,
    scoreLine(c),
    aspectsList(e?.aspects),
    c.verifyError ? `<p class="err">verification failed: ${esc(c.verifyError)}</p>` : '',
    from,
    promptBlock(v, c),
    c.reflection ? `<div class="sec"><h4>Corrected with</h4>${reflectionBlock(c.reflection)}</div>` : '',
    outputsBlock(v, c),
    e?.raw ? `<details class="raw"><summary>Verifier's words</summary><p>${esc(e.raw)}</p></details>` : '',
  ];
  return `<article class="${cardClasses(v, c, 'card')}" id="${esc(anchor(c.id))}">${parts.join('')}</article>`;
}

function poolCard(v: View, c: Candidate, rank: number): string {
  const parts = [
    badges(v, c),
    `<figure class="thumb" style="height:${POOL_THUMB_PX}px">${imgTag(v, c, POOL_THUMB_PX)}</figure>`,
    `<div class="idline"><code class="cid">${esc(c.id)}</code></div>`,
    `<div class="idline"><span class="seed">seed ${esc(c.seed)}</span><span class="seed">rank ${rank}</span></div>`,
    scoreLine(c),
    aspectsList(c.evaluation?.aspects),
    c.verifyError ? `<p class="err">verification failed: ${esc(c.verifyError)}</p>` : '',
    c.prompt !== v.run.prompt ? `<div class="sec"><h4>Prompt</h4><p class="prompt">${esc(c.prompt)}</p></div>` : '',
    c.evaluation?.raw ? `<details class="raw"><summary>Verifier's words</summary><p>${esc(c.evaluation.raw)}</p></details>` : '',
  ];
  return `<article class="${cardClasses(v, c, 'card compact')}" id="${esc(anchor(c.id))}">${parts.join('')}</article>`;
}

function anchor(id: string): string {
  return `c-${id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

function statusPill(status: string): string {
  const cls = ['done', 'running', 'failed', 'interrupted'].includes(status) ? status : 'unknown';
  return `<span class="status ${cls}">${esc(status)}</span>`;
}

// ---------------------------------------------------------------------------------------------------------------
// sections

function headerSection(v: View): string {
  const { run } = v;
  const p = run.params;
  const param = (k: string, val: unknown) => `<span class="param"><span>${esc(k)}</span><b>${esc(val)}</b></span>`;
  // best-of-N has no chains: its one number is the pool (samples + width × depth)
  const shape =
    p?.strategy === 'noise'
      ? [param('pool', p.samples + p.width * p.depth)]
      : [param('samples', p?.samples ?? '—'), param('width', p?.width ?? '—'), param('depth', p?.depth ?? '—')];
  const params = [
    ...shape,
    param('seed', p?.seed ?? '—'),
    p?.chainHead ? param('chain head', p.chainHead) : '',
    p?.maxImages !== undefined ? param('max images', p.maxImages) : '',
  ].join('');
  const tag = run.meta?.tag ? `<span class="param"><span>tag</span><b>${esc(run.meta.tag)}</b></span>` : '';
  return `<header class="top">
<div class="kicker">ReflectionFlow run report ${statusPill(run.status)}</div>
<h1 class="prompt-title">${esc(run.prompt)}</h1>
<div class="params"><span class="strategy">${esc(p?.strategy ?? 'unknown strategy')}</span>${params}${tag}</div>
${run.error ? `<div class="banner">Run error: ${esc(run.error)}</div>` : ''}
</header>`;
}

function heroSection(v: View): string {
  const best = v.bestId ? v.byId.get(v.bestId) : undefined;
  if (!best) {
    return `<section class="hero empty"><div class="hero-img"><div class="noimg" style="width:${HERO_PX}px;height:${HERO_PX}px"><span>no image chosen yet</span></div></div></section>`;
  }
  const e = best.evaluation;
  const where = best.chain !== null ? `chain ${best.chain}, round ${best.round}` : `noise pool, round ${best.round}`;
  const reflection = best.reflection ? `<h4>Corrected with</h4>${reflectionBlock(best.reflection)}` : '';
  return `<section class="hero">
<div class="hero-img">${imgTag(v, best, HERO_PX)}</div>
<div class="hero-info">
<div class="badge chosen big">★ Chosen image</div>
<div class="hero-score"><span class="score">${esc(formatScore(e?.score ?? v.run.result?.bestScore))}</span>${labelPill(e?.label)}</div>
<div class="idline"><a href="#${esc(anchor(best.id))}"><code class="cid">${esc(best.id)}</code></a><span class="seed">seed ${esc(best.seed)} · ${esc(where)}</span></div>
${aspectsList(e?.aspects)}
<h4>Generated from</h4><p class="prompt">${esc(best.prompt)}</p>
${reflection}
${v.run.result?.bestPath ? `<p class="muted small">file: <code>${esc(v.run.result.bestPath)}</code></p>` : ''}
</div>
</section>`;
}

function statsSection(v: View): string {
  const { run } = v;
  const r = run.result;
  const used = r?.imagesGenerated;
  const budget = r?.budget;
  const pct = used !== undefined && budget ? Math.min(100, (used / budget) * 100) : 0;
  const budgetHtml =
    used !== undefined && budget !== undefined
      ? `<div class="stat"><div class="stat-k">Budget used</div><div class="stat-v">${esc(used)} <span class="muted">/ ${esc(budget)} images</span></div><div class="bar wide"><i style="width:${pct.toFixed(1)}%"></i></div></div>`
      : `<div class="stat"><div class="stat-k">Budget used</div><div class="stat-v">${esc(v.byId.size)} <span class="muted">images so far (run not finished)</span></div></div>`;
  const wall = `<div class="stat"><div class="stat-k">Wall time</div><div class="stat-v">${esc(formatMs(r?.wallMs))}</div></div>`;
  const note = r?.cost?.builtIn ? `<div class="muted small">${esc(builtInNote(r.cost.builtIn))}</div>` : '';
  const price = r?.cost
    ? `<div class="stat"><div class="stat-k">Estimated price</div><div class="stat-v">${esc(r.cost.total.toPrecision(3))}</div>${note}</div>`
    : '';

  // busy time (a call in flight), which never exceeds wall time; runs recorded before it existed show summed call time
  const times = r?.busyPerRole ?? r?.timePerRole ?? {};
  const roles = ROLES.filter((role: Role) => run.backends?.[role] !== undefined || times[role] !== undefined);
  const maxT = Math.max(1, ...roles.map((role) => times[role] ?? 0));
  const rows = roles
    .map((role) => {
      const t = times[role];
      const w = t !== undefined ? (t / maxT) * 100 : 0;
      const share = t !== undefined && r?.wallMs ? ` <span class="muted">${Math.round((100 * t) / r.wallMs)}%</span>` : '';
      return `<tr><td class="role">${esc(role)}</td><td><code>${esc(run.backends?.[role] ?? '—')}</code></td><td class="num">${esc(formatMs(t))}${share}</td><td class="tbar"><span class="bar"><i style="width:${w.toFixed(1)}%"></i></span></td></tr>`;
    })
    .join('');
  const table = roles.length
    ? `<table class="roles"><thead><tr><th>Role</th><th>Backend</th><th class="num">${r?.busyPerRole ? 'Busy (share of wall)' : 'Call time'}</th><th></th></tr></thead><tbody>${rows}</tbody></table>`
    : '';
  return `<section class="stats"><div class="stat-row">${budgetHtml}${wall}${price}</div>${table}${chartSvg(v)}</section>`;
}

/** Score by round, one line per chain, grey dots for the pool. Inline SVG (no namespace needed in HTML). */
function chartSvg(v: View): string {
  const scored = [...v.byId.values()].filter((c) => Number.isFinite(rankScore(c)));
  if (scored.length < 2 || v.rounds < 2) return '';
  const W = 420;
  const H = 150;
  const padL = 40;
  const padR = 12;
  const padT = 10;
  const padB = 24;
  let lo = Math.min(...scored.map(rankScore));
  let hi = Math.max(...scored.map(rankScore));
  if (hi === lo) {
    hi += 0.5;
    lo -= 0.5;
  }
  const x = (round: number) => padL + (round / (v.rounds - 1)) * (W - padL - padR);
  const y = (s: number) => padT + (1 - (s - lo) / (hi - lo)) * (H - padT - padB);
  const parts: string[] = [];
  parts.push(`<line x1="${padL}" y1="${H - padB}" x2="${W - padR}" y2="${H - padB}" class="axis"/>`);
  for (let r = 0; r < v.rounds; r++) {
    parts.push(`<text x="${x(r).toFixed(1)}" y="${H - 8}" text-anchor="middle" class="tick">r${r}</text>`);
  }
  parts.push(`<text x="${padL - 6}" y="${(y(hi) + 4).toFixed(1)}" text-anchor="end" class="tick">${esc(formatScore(hi))}</text>`);
  parts.push(`<text x="${padL - 6}" y="${(y(lo) + 4).toFixed(1)}" text-anchor="end" class="tick">${esc(formatScore(lo))}</text>`);
  for (const c of v.unkept) {
    if (!Number.isFinite(rankScore(c))) continue;
    parts.push(`<circle cx="${x(c.round).toFixed(1)}" cy="${y(rankScore(c)).toFixed(1)}" r="3" class="pooldot"><title>${esc(c.id)}: ${esc(formatScore(rankScore(c)))}</title></circle>`);
  }
  for (const { chain, members } of v.chains) {
    const color = CHAIN_COLORS[chain % CHAIN_COLORS.length]!;
    const pts = members.filter((c) => Number.isFinite(rankScore(c)));
    if (pts.length > 1) {
      const d = pts.map((c) => `${x(c.round).toFixed(1)},${y(rankScore(c)).toFixed(1)}`).join(' ');
      parts.push(`<polyline points="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
    }
    for (const c of pts) {
      const isBest = c.id === v.bestId;
      parts.push(
        `<circle cx="${x(c.round).toFixed(1)}" cy="${y(rankScore(c)).toFixed(1)}" r="${isBest ? 6 : 4}" fill="${isBest ? '#f5b400' : color}" stroke="${isBest ? '#8a6500' : '#fff'}" stroke-width="1.5"><title>${esc(c.id)}: ${esc(formatScore(rankScore(c)))}</title></circle>`,
      );
    }
  }
  return `<figure class="chart"><figcaption>Score by round <span class="muted">(lines: chains, grey: pool images not kept, gold: chosen)</span></figcaption><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="score by round">${parts.join('')}</svg></figure>`;
}

function roundTitle(v: View, round: number): string {
  if (round === 0) return 'noise pool';
  const s = v.run.params?.strategy;
  if (s === 'reflection') return 'reflect → refine → correct';
  if (s === 'noise+prompt') return 'refine → regenerate';
  return '';
}

function treeSection(v: View): string {
  const cols = `grid-template-columns: 132px repeat(${v.rounds}, minmax(${ROUND_MIN_PX}px, 1fr))`;
  const head: string[] = ['<div class="corner">chain \\ round</div>'];
  for (let r = 0; r < v.rounds; r++) {
    const inRound = [...v.byId.values()].filter((c) => c.round === r);
    const best = bestOf(inRound);
    const bestTxt = best && Number.isFinite(rankScore(best)) ? `best ${esc(formatScore(rankScore(best)))}` : '';
    head.push(`<div class="colhead"><b>Round ${r}</b><span>${esc(roundTitle(v, r))}</span><span class="muted">${bestTxt}</span></div>`);
  }
  const rows: string[] = [];
  for (const { chain, members } of v.chains) {
    const color = CHAIN_COLORS[chain % CHAIN_COLORS.length]!;
    const headC = members.find((c) => c.round === 0) ?? members[0];
    const bestC = bestOf(members);
    let delta = '';
    if (headC && bestC && Number.isFinite(rankScore(headC)) && Number.isFinite(rankScore(bestC))) {
      const d = rankScore(bestC) - rankScore(headC);
      delta = `<span class="delta ${d > 0 ? 'up' : 'flat'}">${d > 0 ? '▲ +' : '± '}${esc(formatScore(d))} vs round 0</span>`;
    }
    rows.push(
      `<div class="rowhead" style="--chain:${color}"><b>Chain ${esc(chain)}</b><span class="muted">${members.length} image${members.length === 1 ? '' : 's'}</span>${bestC ? `<span>best <b>${esc(formatScore(bestC.evaluation?.score))}</b></span>` : ''}${delta}</div>`,
    );
    for (let r = 0; r < v.rounds; r++) {
      const here = members.filter((c) => c.round === r);
      rows.push(
        here.length
          ? `<div class="cell" style="--chain:${color}">${here.map((c) => chainCard(v, c)).join('')}</div>`
          : `<div class="cell empty"><span>no image this round</span></div>`,
      );
    }
  }
  const noise = v.run.params?.strategy === 'noise';
  const grid = v.chains.length
    ? `<div class="tree-scroll"><div class="tree" style="${cols}">${head.join('')}${rows.join('')}</div></div>`
    : noise
      ? ''
      : `<p class="muted">No chains yet.</p>`;
  const poolNote = noise ? 'best first; best-of-N keeps no chains' : `best first; the top ${esc(v.chains.length)} became chain heads`;
  const pool = v.unkept.length
    ? `<div class="pool"><div class="pool-head"><b>${noise ? 'Noise pool' : 'Round 0 pool — not kept'}</b><span class="muted">${v.unkept.length} image${v.unkept.length === 1 ? '' : 's'}, ${poolNote}</span></div><div class="pool-cards">${v.unkept.map((c, i) => poolCard(v, c, v.chains.length + i + 1)).join('')}</div></div>`
    : '';
  return `<section class="tree-section">
<div class="section-head"><h2>${noise ? 'Noise pool (best-of-N)' : 'Reflection tree'}</h2>
<div class="legend"><span class="badge chosen">★ chosen overall</span><span class="badge cbest">◆ best of its chain</span><span class="badge failed">✕ verification failed</span></div></div>
${grid}
${pool}
</section>`;
}

// ---------------------------------------------------------------------------------------------------------------
// public API

/** Render one self-contained HTML document for a run. Pure: no I/O. `images` maps candidate id → image bytes. */
export function renderReport(run: RunRecord, images: Map<string, Uint8Array>): string {
  const v = buildView(run, images);
  const scriptHash = createHash('sha256').update(SCRIPT, 'utf8').digest('base64');
  // the policy forbids any network fetch and any script but ours, even if something slipped through escaping
  const csp = `default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-${scriptHash}'; base-uri 'none'; form-action 'none'`;
  const footer = `<footer>run <code>${esc(run.id)}</code> · created ${esc(run.createdAt)} · updated ${esc(run.updatedAt)} · ${esc(v.byId.size)} images</footer>`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${esc(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(`ReflectionFlow — ${run.prompt}`)}</title>
<style>${REPORT_CSS}</style>
</head>
<body>
${headerSection(v)}
<main>
<section class="overview">${heroSection(v)}${statsSection(v)}</section>
${treeSection(v)}
</main>
${footer}
<div id="lightbox" hidden><img alt=""><p></p></div>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

/**
 * Read `<runDir>/run.json` and `<runDir>/images/`, render the report and write `<runDir>/report.html` atomically.
 * Returns the report's path. A missing or invalid run.json is a UserError naming the file.
 */
export async function writeReport(runDir: string): Promise<string> {
  const dir = path.resolve(runDir);
  const run = await readRunRecord(dir);
  const images = await readImages(path.join(dir, 'images'), run.candidates);
  const html = renderReport(run, images);
  const out = path.join(dir, REPORT_FILE);
  writeFileAtomic(out, html);
  return out;
}

/** Each candidate's image, if present; large images are shrunk so the page stays light. */
async function readImages(imagesDir: string, candidates: Candidate[]): Promise<Map<string, Uint8Array>> {
  const images = new Map<string, Uint8Array>();
  for (const c of candidates) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(c.id)) continue; // never a path outside images/
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await fs.readFile(path.join(imagesDir, `${c.id}.png`)));
    } catch {
      continue; // shown as "no image"
    }
    images.set(c.id, await shrink(bytes));
  }
  return images;
}

async function shrink(bytes: Uint8Array): Promise<Uint8Array> {
  const info = sniffImage(bytes);
  if (!info || info.width === undefined || info.height === undefined) return bytes;
  if (Math.max(info.width, info.height) <= EMBED_MAX_PX) return bytes;
  try {
    const out = await sharp(bytes)
      .resize({ width: EMBED_MAX_PX, height: EMBED_MAX_PX, fit: 'inside' })
      .png()
      .toBuffer();
    return new Uint8Array(out);
  } catch {
    return bytes;
  }
}

