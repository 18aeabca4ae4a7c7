// ReflectionFlow live view. Plain JS, no dependencies: everything comes from this server (see src/ui/server.ts).
'use strict';

const main = document.getElementById('main');
const PAGE = 50;
let teardown = [];

/** h('div', {class: 'x', onclick: f}, child, 'text', ...) */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'vars') for (const [name, value] of Object.entries(v)) el.style.setProperty(name, value);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

/** Replace an element's children; null, undefined and false are left out (replaceChildren would print them). */
function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

async function api(path, body) {
  const init = body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((data.error && data.error.message) || `${res.status} ${res.statusText}`);
  return data;
}

const fmt = (s) => (s === null || s === undefined || !Number.isFinite(s) ? '—' : Number.isInteger(s) ? String(s) : s.toFixed(3).replace(/0+$/, '').replace(/\.$/, ''));
const enc = encodeURIComponent;
const CHAIN_COLORS = ['#2f6fde', '#e8590c', '#2b8a3e', '#ae3ec9', '#0c8599', '#c2255c', '#5c940d', '#1864ab'];

function statusPill(status) {
  const known = ['done', 'running', 'failed', 'interrupted'].includes(status) ? status : 'unknown';
  return h('span', { class: `status ${known}`, 'data-status': status }, status);
}

function setPage(title, ...content) {
  fill(main, ...content);
  document.title = `${title} — ReflectionFlow`;
}

// ---------------------------------------------------------------------------------------------------- routing

function route() {
  for (const f of teardown) f();
  teardown = [];
  const parts = (location.hash.replace(/^#\/?/, '') || '').split('/').filter(Boolean).map(decodeURIComponent);
  const [view, a, b] = parts;
  if (view === 'run' && a) runPage(a);
  else if (view === 'compare' && a && b) comparePage(a, b);
  else if (view === 'evals') evalsPage();
  else if (view === 'eval' && a) evalPage(a);
  else homePage(Number(new URLSearchParams(location.hash.split('?')[1] || '').get('page') || 0));
}
window.addEventListener('hashchange', route);
document.getElementById('skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});

// ---------------------------------------------------------------------------------------------------- home

async function homePage(page) {
  const list = h('section', { class: 'panel', 'aria-labelledby': 'runs-h' }, h('h2', { id: 'runs-h' }, 'Runs'), h('p', { class: 'muted' }, 'Loading…'));
  setPage('Runs', h('div', { class: 'home' }, newRunForm(), list));
  let data;
  try {
    data = await api(`/api/runs?offset=${page * PAGE}&limit=${PAGE}`);
  } catch (err) {
    fill(list, h('h2', { id: 'runs-h' }, 'Runs'), h('p', { class: 'err', role: 'alert' }, err.message));
    return;
  }
  const picked = new Set();
  const compare = h('button', { type: 'button', disabled: true, id: 'compare' }, 'Compare 2 selected');
  compare.addEventListener('click', () => {
    const [x, y] = [...picked];
    location.hash = `#/compare/${enc(x)}/${enc(y)}`;
  });
  const rows = data.runs.map((r) =>
    h(
      'tr',
      { 'data-run': r.id },
      h('td', {}, h('input', {
        type: 'checkbox',
        'aria-label': `select ${r.prompt} (${r.strategy}) to compare`,
        onchange: (e) => {
          if (e.target.checked) picked.add(r.id);
          else picked.delete(r.id);
          compare.disabled = picked.size !== 2;
        },
      })),
      h('td', {}, statusPill(r.status)),
      h('td', { class: 'pr' }, h('a', { href: `#/run/${enc(r.id)}` }, r.prompt)),
      h('td', {}, r.strategy),
      h('td', { class: 'num' }, r.images),
      h('td', { class: 'num' }, fmt(r.bestScore)),
      h('td', { class: 'when' }, r.createdAt.replace('T', ' ').slice(0, 19)),
    ),
  );
  const first = page * PAGE;
  const pager = h(
    'div',
    { class: 'pager' },
    h('span', { class: 'muted' }, data.total ? `${first + 1}–${first + data.runs.length} of ${data.total}` : 'no runs yet'),
    page > 0 ? h('a', { class: 'btn', href: `#/?page=${page - 1}` }, '← Newer') : null,
    first + PAGE < data.total ? h('a', { class: 'btn', href: `#/?page=${page + 1}` }, 'Older →') : null,
    compare,
  );
  const table = h(
    'div',
    { class: 'scroll' },
    h('table', { class: 'runs' }, h('thead', {}, h('tr', {}, ...['', 'Status', 'Prompt', 'Strategy', 'Images', 'Best', 'Created (UTC)'].map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, rows)),
  );
  fill(list, h('h2', { id: 'runs-h' }, 'Runs'), pager, table);
}

function newRunForm() {
  const error = h('p', { class: 'err', role: 'alert', hidden: true });
  const engine = h('select', { id: 'f-engine', name: 'engine' });
  const num = (id, label, value, min) => h('label', { for: id }, label, h('input', { id, name: id, type: 'number', min, step: 1, value, required: true }));
  const form = h(
    'form',
    { class: 'panel newrun', 'aria-labelledby': 'new-h' },
    h('h2', { id: 'new-h' }, 'Start a run'),
    h('label', { for: 'f-prompt' }, 'Prompt', h('textarea', { id: 'f-prompt', name: 'prompt', rows: 2, required: true, placeholder: 'a photo of a red circle left of a blue square' })),
    h('div', { class: 'row' },
      h('label', { for: 'f-strategy' }, 'Strategy', h('select', { id: 'f-strategy', name: 'strategy' }, ...['reflection', 'noise+prompt', 'noise'].map((s) => h('option', { value: s }, s)))),
      h('label', { for: 'f-engine' }, 'Backend or config', engine)),
    h('div', { class: 'row' }, num('f-samples', 'Samples', 8, 1), num('f-width', 'Width', 2, 1), num('f-depth', 'Depth', 4, 0), num('f-seed', 'Seed', 0, 0)),
    h('div', { class: 'row' }, h('button', { type: 'submit', id: 'f-start' }, 'Start run')),
    error,
  );
  api('/api/options').then((o) => {
    fill(engine, 
      h('optgroup', { label: 'Backends' }, o.backends.map((b) => h('option', { value: `backend:${b.name}`, title: b.description }, b.name))),
      o.configs.length ? h('optgroup', { label: 'Config files' }, o.configs.map((c) => h('option', { value: `config:${c}` }, c))) : null,
    );
  }, (err) => {
    error.hidden = false;
    error.textContent = err.message;
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    const [kind, name] = String(f.get('engine') || '').split(/:(.*)/s);
    const body = {
      prompt: String(f.get('prompt')),
      strategy: String(f.get('strategy')),
      samples: Number(f.get('f-samples')),
      width: Number(f.get('f-width')),
      depth: Number(f.get('f-depth')),
      seed: Number(f.get('f-seed')),
      ...(kind === 'backend' ? { backend: name } : kind === 'config' ? { config: name } : {}),
    };
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    error.hidden = true;
    try {
      const { id } = await api('/api/runs', body);
      location.hash = `#/run/${enc(id)}`;
    } catch (err) {
      error.hidden = false;
      error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// ---------------------------------------------------------------------------------------------------- one run

const ID = /^r(\d+)-(?:i(\d+)|c(\d+))-s(\d+)$/;

/** The search as its events tell it: every image with what made it and what was said of it. */
class RunState {
  constructor() {
    this.cands = new Map();
    this.summary = null;
    this.failed = 0;
  }
  cand(id) {
    let c = this.cands.get(id);
    if (!c) {
      const m = ID.exec(id) || [];
      c = { id, round: Number(m[1] || 0), index: m[2] !== undefined ? Number(m[2]) : null, chain: m[3] !== undefined ? Number(m[3]) : null, image: false, keptAs: null };
      this.cands.set(id, c);
    }
    return c;
  }
  /** Apply events in file order; returns the ids they touched. */
  apply(events) {
    const touched = new Set();
    for (const e of events) {
      const c = this.cand(e.candidateId);
      touched.add(c.id);
      if (e.error) {
        this.failed++;
        if (e.role === 'verifier') c.verifyError = e.error;
        continue;
      }
      if (e.role === 'generator' || e.role === 'corrector') {
        c.image = true;
        c.prompt = e.prompt;
        c.seed = e.seed;
        c.origin = e.role === 'generator' ? 'generate' : 'correct';
        c.parentId = e.inputIds[0] || null;
        if (e.reflection) c.reflectionIn = e.reflection;
        const parent = c.parentId && this.cand(c.parentId);
        if (parent && parent.round === 0 && c.round === 1 && c.chain !== null) {
          parent.keptAs = c.chain;
          touched.add(parent.id);
        }
      } else if (e.role === 'verifier') {
        c.evaluation = e.evaluation;
        delete c.verifyError;
      } else if (e.role === 'reflector') c.reflectionOut = e.reflection;
      else if (e.role === 'refiner') c.refinedPrompt = e.refinedPrompt;
    }
    return touched;
  }
  setSummary(s) {
    this.summary = s;
    for (const ch of s.chains || []) if (ch.ids[0]) this.cand(ch.ids[0]).keptAs = ch.chain;
  }
  best() {
    if (this.summary && this.summary.bestId) return { cand: this.cands.get(this.summary.bestId), final: true };
    let best = null;
    for (const c of this.cands.values()) if (c.evaluation && (!best || c.evaluation.score > best.evaluation.score)) best = c;
    return { cand: best, final: false };
  }
}

function plan(p) {
  const chains = p.strategy === 'noise' ? 0 : p.width;
  let pool = p.strategy === 'noise' ? p.samples + p.width * p.depth : p.samples;
  const budget = p.samples + p.width * p.depth;
  const cap = p.maxImages !== undefined ? Math.min(budget, p.maxImages) : budget;
  pool = Math.min(pool, cap);
  return { chains, pool, depth: chains ? p.depth : 0, budget: cap };
}

function imageOf(runId, c, px) {
  return h('img', { src: `/api/runs/${enc(runId)}/images/${enc(c.id)}.png`, width: px, height: px, loading: 'lazy', decoding: 'async', class: 'px', alt: `image ${c.id}` });
}

function reflectionList(r) {
  const items = (r.items || []).filter((s) => String(s).trim());
  return items.length ? h('ul', { class: 'refl' }, items.map((s) => h('li', {}, s))) : h('p', { class: 'refl-text' }, r.text || '(empty reflection)');
}

/** A run view into `root`, fed by the run's event stream; returns a function that stops it. */
function mountRun(root, id, compact) {
  const state = new RunState();
  const cards = new Map();
  const dirty = new Set();
  let frame = 0;
  let pool = [];
  let cells = new Map();
  let built = null;
  let es = null;

  const head = h('header', { class: 'runhead' });
  const hero = h('section', { class: 'live-hero', 'aria-live': 'polite' });
  const chainsBox = h('section', { class: 'chains', 'aria-label': 'chains' });
  const poolBox = h('section', { class: 'poolbox', 'aria-label': 'noise pool' });
  const note = h('p', { class: 'err', role: 'alert', hidden: true });
  fill(root, head, note, hero, poolBox, chainsBox);

  function build(p) {
    const shape = plan(p);
    built = JSON.stringify(shape);
    pool = Array.from({ length: shape.pool }, (_, i) => h('div', { class: 'slot', 'data-slot': i }, h('span', { class: 'muted' }, `#${i}`)));
    fill(poolBox, 
      h('h2', {}, p.strategy === 'noise' ? 'Noise pool (best-of-N)' : 'Noise pool', ' ', h('span', { class: 'muted small', id: compact ? null : 'pool-count' })),
      h('div', { class: 'pool-grid' }, pool),
    );
    cells = new Map();
    const rows = [];
    for (let k = 0; k < shape.chains; k++) {
      const color = CHAIN_COLORS[k % CHAIN_COLORS.length];
      const row = [h('div', { class: 'rowhead', vars: { '--chain': color } }, h('b', {}, `Chain ${k}`))];
      for (let r = 0; r <= shape.depth; r++) {
        const cell = h('div', { class: 'lcell', vars: { '--chain': color } }, h('span', { class: 'muted small' }, r === 0 ? 'head from pool' : `round ${r}`));
        cells.set(`${k}:${r}`, cell);
        row.push(cell);
      }
      rows.push(h('div', { class: 'chainrow' }, row));
    }
    fill(chainsBox, ...(shape.chains ? [h('h2', {}, 'Chains ', h('span', { class: 'muted small' }, p.strategy === 'reflection' ? 'reflect → refine → correct, round by round' : 'refine → regenerate, round by round')), h('div', { class: 'chain-scroll' }, rows)] : []));
    for (const c of state.cands.values()) dirty.add(c.id);
  }

  function card(c, where) {
    const best = state.best();
    const chosen = best.final && best.cand && best.cand.id === c.id;
    const e = c.evaluation;
    const parts = [
      chosen ? h('div', { class: 'badges' }, h('span', { class: 'badge chosen' }, '★ chosen')) : null,
      c.image ? imageOf(id, c, where === 'pool' ? 72 : 112) : h('div', { class: 'noimg' }, '…'),
      h('div', { class: 'idline' }, h('code', { class: 'cid' }, c.id)),
      h('div', { class: 'scoreline' }, e ? h('span', { class: 'score' }, fmt(e.score)) : h('span', { class: 'score none' }, c.verifyError ? 'verify failed' : state.summary && state.summary.status !== 'running' ? 'not scored' : 'scoring…'), e && e.label ? h('span', { class: `pill ${e.label}` }, e.label) : null),
    ];
    if (where === 'pool' && c.keptAs !== null) parts.push(h('span', { class: 'badge cbest' }, `→ chain ${c.keptAs}`));
    if (where === 'chain') {
      if (c.reflectionIn && c.origin === 'correct') parts.push(h('details', { class: 'in' }, h('summary', {}, 'corrected with'), reflectionList(c.reflectionIn)));
      if (c.reflectionOut) parts.push(h('div', { class: 'sec reflection' }, h('h4', {}, 'Reflection'), reflectionList(c.reflectionOut)));
      if (c.refinedPrompt !== undefined) parts.push(h('div', { class: 'sec refined' }, h('h4', {}, 'Refined prompt'), h('p', { class: 'prompt' }, c.refinedPrompt)));
    }
    return h('article', { class: `card${where === 'pool' ? ' compact' : ''}${chosen ? ' chosen' : ''}`, 'data-id': c.id, 'data-score': e ? e.score : null }, parts);
  }

  function paint() {
    frame = 0;
    if (!built) return;
    for (const cid of dirty) {
      const c = state.cands.get(cid);
      if (!c) continue;
      if (c.round === 0 && c.index !== null && pool[c.index]) {
        const el = card(c, 'pool');
        const old = cards.get(`p:${cid}`);
        if (old) old.replaceWith(el);
        else fill(pool[c.index], el);
        pool[c.index].classList.add('filled');
        cards.set(`p:${cid}`, el);
      }
      const chain = c.round === 0 ? c.keptAs : c.chain;
      const cell = chain !== null && cells.get(`${chain}:${c.round}`);
      if (cell) {
        const el = card(c, 'chain');
        const old = cards.get(`c:${cid}`);
        if (old && old.parentNode === cell) old.replaceWith(el);
        else fill(cell, el);
        cards.set(`c:${cid}`, el);
      }
    }
    dirty.clear();
    const filled = pool.filter((s) => s.classList.contains('filled')).length;
    const count = root.querySelector('#pool-count');
    if (count) count.textContent = `${filled} / ${pool.length} images`;
    paintHero();
  }

  function paintHero() {
    const { cand, final } = state.best();
    const s = state.summary;
    const made = [...state.cands.values()].filter((c) => c.image).length;
    const budget = s ? plan(s.params).budget : 0;
    const progress = h('div', { class: 'progress' }, h('span', {}, `${made} / ${budget} images`), h('span', { class: 'bar wide' }, h('i', { vars: { width: `${budget ? Math.min(100, (100 * made) / budget) : 0}%` } })));
    if (!cand) {
      fill(hero, progress, h('p', { class: 'muted' }, 'No image scored yet.'));
      return;
    }
    fill(hero, 
      h('div', { class: `hero-card${final ? ' final' : ''}`, id: compact ? null : 'final' },
        imageOf(id, cand, compact ? 128 : 192),
        h('div', {},
          h('div', { class: `badge ${final ? 'chosen' : 'cbest'} big` }, final ? '★ Final choice' : 'Best so far'),
          h('div', { class: 'hero-score' }, h('span', { class: 'score' }, fmt(cand.evaluation && cand.evaluation.score)), cand.evaluation && cand.evaluation.label ? h('span', { class: `pill ${cand.evaluation.label}` }, cand.evaluation.label) : null),
          h('div', {}, h('code', { class: 'cid' }, cand.id), ' ', h('span', { class: 'muted small' }, cand.chain !== null ? `chain ${cand.chain}, round ${cand.round}` : cand.keptAs !== null ? `pool → chain ${cand.keptAs}` : 'noise pool')),
          cand.prompt ? h('p', { class: 'prompt' }, cand.prompt) : null)),
      progress,
    );
  }

  function schedule(ids) {
    for (const x of ids) dirty.add(x);
    if (!frame) frame = requestAnimationFrame(paint);
  }

  function paintHead(s) {
    const p = s.params;
    const running = s.status === 'running';
    const resumable = ['interrupted', 'incomplete', 'failed'].includes(s.status);
    const buttons = [
      running ? h('button', { type: 'button', class: 'danger', onclick: () => act('cancel') }, 'Cancel run') : null,
      resumable ? h('button', { type: 'button', onclick: () => act('resume') }, 'Resume run') : null,
      compact ? h('a', { class: 'btn', href: `#/run/${enc(id)}` }, 'Open') : null,
    ];
    const param = (k, v) => h('span', { class: 'param' }, h('span', {}, k), h('b', {}, v));
    fill(head, 
      h('div', { class: 'kicker' }, 'run ', h('code', {}, s.id), ' ', statusPill(s.status)),
      h(compact ? 'h2' : 'h1', { class: 'prompt-title', tabindex: -1 }, s.prompt),
      h('div', { class: 'params' }, h('span', { class: 'strategy' }, s.strategy), param('samples', p.samples), param('width', p.width), param('depth', p.depth), param('seed', p.seed), ...Object.entries(s.backends || {}).slice(0, 1).map(([, b]) => param('backend', b))),
      h('div', { class: 'actions' }, buttons),
      s.error && s.status !== 'running' ? h('p', { class: 'muted small' }, s.error) : null,
    );
  }

  async function act(what) {
    note.hidden = true;
    try {
      const s = await api(`/api/runs/${enc(id)}/${what}`, {});
      onRun(s);
      if (what === 'resume') connect();
    } catch (err) {
      note.hidden = false;
      note.textContent = err.message;
    }
  }

  function onRun(s) {
    const first = !state.summary;
    if (!first && state.summary.status !== s.status) schedule([...state.cands.values()].filter((c) => !c.evaluation).map((c) => c.id));
    state.setSummary(s);
    paintHead(s);
    if (built !== JSON.stringify(plan(s.params))) build(s.params);
    if (first && !compact) head.querySelector('h1').focus();
    schedule(s.chains.flatMap((c) => c.ids));
    if (s.bestId) schedule([...state.cands.keys()].filter((k) => state.cands.get(k).evaluation));
  }

  function connect() {
    if (es) es.close();
    es = new EventSource(`/api/runs/${enc(id)}/events`);
    es.addEventListener('run', (m) => onRun(JSON.parse(m.data)));
    es.addEventListener('calls', (m) => schedule(state.apply(JSON.parse(m.data))));
    es.addEventListener('end', () => {
      es.close();
      root.dataset.stream = 'ended';
    });
    root.dataset.stream = 'open';
  }
  connect();
  return () => {
    if (es) es.close();
    if (frame) cancelAnimationFrame(frame);
  };
}

function runPage(id) {
  const root = h('div', { class: 'run' });
  setPage('Run', root);
  teardown.push(mountRun(root, id, false));
}

function comparePage(a, b) {
  const left = h('div', { class: 'run compact', 'data-side': 'left' });
  const right = h('div', { class: 'run compact', 'data-side': 'right' });
  setPage('Compare', h('h1', { class: 'page-title', tabindex: -1 }, 'Compare two runs'), h('div', { class: 'compare' }, left, right));
  main.querySelector('h1').focus();
  teardown.push(mountRun(left, a, true), mountRun(right, b, true));
}

// ---------------------------------------------------------------------------------------------------- evals

async function evalsPage() {
  setPage('Eval results', h('h1', { class: 'page-title', tabindex: -1 }, 'Eval results'), h('p', { class: 'muted' }, 'Loading…'));
  try {
    const data = await api('/api/evals');
    fill(main, 
      h('h1', { class: 'page-title', tabindex: -1 }, 'Eval results'),
      h('p', { class: 'muted' }, `from ${data.folder}`),
      data.evals.length ? h('ul', { class: 'evals' }, data.evals.map((n) => h('li', {}, h('a', { href: `#/eval/${enc(n)}` }, n)))) : h('p', {}, 'No eval results in this folder (reflectionflow eval --out writes them).'),
    );
  } catch (err) {
    main.append(h('p', { class: 'err', role: 'alert' }, err.message));
  }
}

async function evalPage(name) {
  setPage(name, h('h1', { class: 'page-title', tabindex: -1 }, name), h('p', { class: 'muted' }, 'Loading…'));
  let r;
  try {
    r = await api(`/api/evals/${enc(name)}`);
  } catch (err) {
    main.append(h('p', { class: 'err', role: 'alert' }, err.message));
    return;
  }
  const tags = r.tags || [];
  const head = h('tr', {}, ...['strategy', 'budget', ...tags, 'overall', 'images/search'].map((t) => h('th', { scope: 'col' }, t)));
  const rows = r.cells.map((c) =>
    h('tr', {}, h('td', {}, c.strategy), h('td', { class: 'num' }, c.budget), ...tags.map((t) => h('td', { class: 'num' }, c.categories[t] && c.categories[t].total ? c.categories[t].accuracy.toFixed(3) : '–')), h('td', { class: 'num' }, h('b', {}, c.overall.toFixed(3))), h('td', { class: 'num' }, c.meanImages !== undefined ? c.meanImages.toFixed(1) : '–')),
  );
  const setup = r.setup || {};
  fill(main, 
    h('h1', { class: 'page-title', tabindex: -1 }, name),
    h('p', { class: 'muted' }, `prompts ${setup.prompts || '?'} · strategies ${(setup.strategies || []).join(', ')} · budgets ${(setup.budgets || []).join(', ')}`),
    h('div', { class: 'scroll panel' }, h('table', { class: 'runs evaltable' }, h('thead', {}, head), h('tbody', {}, rows))),
    h('figure', { class: 'panel plot' }, h('img', { src: `/api/evals/${enc(name)}/scaling.svg`, alt: `scaling plot: overall accuracy against images per search, one line per strategy (${name})` })),
  );
}

route();
