import { builtInNote } from '../core/prices.js';
import type { EvalReport } from './metrics.js';

/**
 * The paper's GenEval overall scores with FLUX.1-dev (arXiv 2504.16080, Table 1): one sample, and 32 images of each
 * strategy. Its searches are 2 chains × 16 rounds, the first round being the 2-image pool: 32 counts every image
 * generated, the convention of this table, though the split between pool and chains differs (ours: half and half).
 */
export const PAPER_ROWS: ReadonlyArray<{ strategy: string; budget: number; overall: number }> = [
  { strategy: 'FLUX.1-dev', budget: 1, overall: 0.67 },
  { strategy: 'noise', budget: 32, overall: 0.85 },
  { strategy: 'noise+prompt', budget: 32, overall: 0.87 },
  { strategy: 'reflection (ReflectionFlow)', budget: 32, overall: 0.91 },
];

export interface OutputOptions {
  /** add the paper's rows (for the GenEval-Shapes test split, GenEval's categories) */
  paper?: boolean;
}

/** A GenEval-style table: one row per strategy and budget, one column per category, then overall. */
export function markdownTable(report: EvalReport, opts: OutputOptions = {}): string {
  const head = ['strategy', 'budget', ...report.tags, 'overall'];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map((_, i) => (i < 2 ? '---' : '---:')).join(' | ')} |`];
  for (const cell of report.cells) {
    const cats = report.tags.map((t) => {
      const c = cell.categories[t]!;
      return c.total ? c.accuracy.toFixed(3) : '–';
    });
    lines.push(`| ${[cell.strategy, cell.budget, ...cats].join(' | ')} | **${cell.overall.toFixed(3)}** |`);
  }
  const n = report.tags.map((t) => `${t} ${report.cells[0]?.categories[t]?.total ?? 0}`).join(', ');
  lines.push('', `Judged images per cell: ${n}. Overall = mean of the category accuracies (as GenEval).`);
  lines.push('Budget = every image generated, the noise pool included; `@oracle` = the ShapeWorld evaluator as verifier.');
  const j = report.judge;
  if (j) {
    lines.push(
      `Judged by ${j.name} (${j.kinds.join(', ') || 'no verdict'}${j.kinds.includes('rubric') ? ': correct = overall above 5 of 10' : ''}), a judge apart from the search's verifier; its calls are not in the spending table.`,
    );
    const unjudged = report.cells.reduce((n, c) => n + (c.unjudged ?? 0), 0);
    if (unjudged) lines.push(`${unjudged} searches are left out: their judge call failed.`);
  }
  // what the searches spent: images (below the budget when they stop early), VLM calls, price, time
  const priced = report.cells.some((c) => c.meanPrice !== null);
  const timed = report.cells.some((c) => c.meanMs !== undefined);
  const secs = (ms: number | undefined) => (ms === undefined ? '–' : (ms / 1000).toFixed(2));
  lines.push(
    '',
    `| strategy | budget | images/search | VLM calls/search |${priced ? ' price/search |' : ''}${timed ? ' call s/search | wall s/search |' : ''}`,
    `| --- | --- | ---: | ---: |${priced ? ' ---: |' : ''}${timed ? ' ---: | ---: |' : ''}`,
    ...report.cells.map(
      (c) =>
        `| ${c.strategy} | ${c.budget} | ${c.meanImages.toFixed(1)} | ${c.meanVlmCalls.toFixed(1)} |${priced ? ` ${c.meanPrice === null ? '–' : c.meanPrice.toPrecision(3)} |` : ''}` +
        (timed ? ` ${secs(c.meanCallMs)} | ${secs(c.meanMs)} |` : ''),
    ),
  );
  if (priced && report.builtInPrices) {
    lines.push('', `price/search is an estimate with the ${builtInNote(report.builtInPrices)}; the config's \`prices\` override them.`);
  }
  if (timed) {
    lines.push(
      '',
      "call s = the search's calls' summed time (pool calls shared with a smaller rung counted as made); wall s = the search's own time in this eval, where the rungs of one prompt run smallest first and share their pool, so a rung's wall time leaves out the pool images a smaller rung already made.",
    );
  }
  if (j) {
    const u = j.usage;
    lines.push(
      '',
      `Judge ${j.name}: ${u.calls} calls (${u.failed} failed, ${u.retries} retries), ${u.inputTokens} input and ${u.outputTokens} output tokens, ${(u.ms / 1000).toFixed(1)} s of calls` +
        (j.price !== null ? `, price ${j.price.toPrecision(3)}${j.builtIn ? ` (${builtInNote({ [j.name]: j.builtIn })})` : ''}` : '') + '.',
    );
  }
  if (opts.paper) {
    lines.push(
      '',
      '| paper: FLUX.1-dev on GenEval (arXiv 2504.16080) | budget | overall |',
      '| --- | --- | ---: |',
      ...PAPER_ROWS.map((r) => `| ${r.strategy} | ${r.budget} | ${r.overall.toFixed(2)} |`),
      '',
      "The paper's 32 is 2 chains × 16 rounds (its first round is a 2-image pool): every image counted, as here.",
    );
  }
  if (report.verifier) {
    const v = report.verifier;
    lines.push(
      '',
      `Verifier vs ${j ? 'judge' : 'evaluator'} on ${v.images} pool images (${v.positives} judged correct): ROC-AUC ${v.auc.toFixed(3)}` +
        (v.labelAccuracy !== null ? `, yes/no label accuracy ${v.labelAccuracy.toFixed(3)}` : '') + '.',
    );
    if (v.withinPoolAuc !== null) {
      lines.push(`Within one search's pool (mean over the ${v.mixedPools} pools holding both verdicts): ROC-AUC ${v.withinPoolAuc.toFixed(3)}.`);
    }
    lines.push(
      '',
      `| verifier | ${report.tags.join(' | ')} |`,
      `| --- | ${report.tags.map(() => '---:').join(' | ')} |`,
      `| ROC-AUC | ${report.tags.map((t) => (v.byTag[t] && !Number.isNaN(v.byTag[t].auc) ? v.byTag[t].auc.toFixed(3) : '–')).join(' | ')} |`,
      `| images (correct) | ${report.tags.map((t) => (v.byTag[t] ? `${v.byTag[t].images} (${v.byTag[t].positives})` : '–')).join(' | ')} |`,
    );
  }
  return lines.join('\n') + '\n';
}

const COLORS = ['#2563eb', '#ea580c', '#16a34a', '#9333ea', '#dc2626', '#0891b2'];

/** The scaling curve: overall score vs budget (log2 axis), one line per strategy, as a standalone SVG. */
export function scalingSvg(report: EvalReport, title = 'Overall score vs budget', opts: OutputOptions = {}): string {
  const budgets = [...report.budgets].sort((a, b) => a - b);
  const paper = opts.paper ? PAPER_ROWS.filter((r) => budgets.includes(r.budget)) : [];
  const labels = [...report.strategies, ...(paper.length ? ['paper (FLUX.1-dev)'] : [])];
  // the legend's column fits its longest label (≈ 7 px a character at 12 px)
  const legend = Math.max(150, 60 + 7 * Math.max(...labels.map((l) => l.length)));
  const W = 490 + legend;
  const H = 400;
  const m = { l: 56, r: legend, t: 40, b: 48 };
  // x = images really spent: a stop-at arm can sit left of the smallest budget
  const spent = report.cells.map((c) => Math.min(c.meanImages, c.budget)).filter((v) => v > 0);
  const lx = [...budgets, ...spent].map((b) => Math.log2(b));
  const x0 = Math.min(...lx);
  const x1 = Math.max(...lx) === x0 ? x0 + 1 : Math.max(...lx);
  const ticks = [...new Set([...budgets, ...powersOfTwo(2 ** x0, 2 ** x1)])].sort((a, b) => a - b);
  const ys = [...report.cells.map((c) => c.overall), ...paper.map((r) => r.overall)];
  const y0 = Math.max(0, Math.floor(Math.min(...ys) * 10) / 10 - 0.1);
  const y1 = Math.min(1, Math.ceil(Math.max(...ys) * 10) / 10 + 0.05);
  const px = (b: number) => m.l + ((Math.log2(b) - x0) / (x1 - x0)) * (W - m.l - m.r);
  const py = (v: number) => H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${m.l}" y="24" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  for (let v = Math.ceil(y0 * 10) / 10; v <= y1 + 1e-9; v += 0.1) {
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(v)}" y2="${py(v)}" stroke="#e5e7eb"/>`);
    out.push(`<text x="${m.l - 8}" y="${py(v) + 4}" text-anchor="end" fill="#374151">${v.toFixed(1)}</text>`);
  }
  for (const b of ticks) {
    out.push(`<line x1="${px(b)}" x2="${px(b)}" y1="${H - m.b}" y2="${H - m.b + 5}" stroke="#374151"/>`);
    out.push(`<text x="${px(b)}" y="${H - m.b + 18}" text-anchor="middle" fill="#374151">${b}</text>`);
  }
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="#374151"/>`);
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">images generated per search (dashed: stop-at, mean)</text>`);
  out.push(`<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">overall accuracy</text>`);
  report.strategies.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    // x = images really spent: the budget, or less for searches that stop early (a dashed line)
    const cells = budgets.map((b) => report.cells.find((c) => c.strategy === s && c.budget === b)!);
    const adaptive = cells.some((c) => c.meanImages < c.budget - 1e-9);
    const pts = cells.map((c) => [px(adaptive ? c.meanImages : c.budget), py(c.overall)] as const);
    out.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2.5"${adaptive ? ' stroke-dasharray="6 4"' : ''} points="${pts.map((p) => p.join(',')).join(' ')}"/>`,
    );
    for (const [x, y] of pts) out.push(`<circle cx="${x}" cy="${y}" r="4" fill="${color}"/>`);
    const ly = m.t + 10 + i * 20;
    out.push(
      `<line x1="${W - m.r + 16}" x2="${W - m.r + 40}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2.5"${adaptive ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    out.push(`<text x="${W - m.r + 46}" y="${ly + 4}">${escapeXml(s)}</text>`);
  });
  // the paper's points: hollow diamonds, labelled, in the legend's last slot
  paper.forEach((r) => {
    const x = px(r.budget);
    const y = py(r.overall);
    out.push(`<path d="M${x} ${y - 6} L${x + 6} ${y} L${x} ${y + 6} L${x - 6} ${y} Z" fill="none" stroke="#111827" stroke-width="1.5"/>`);
    const left = x < W / 2;
    out.push(
      `<text x="${left ? x + 9 : x - 9}" y="${y + 4}" text-anchor="${left ? 'start' : 'end'}" fill="#111827" font-size="10">${escapeXml(r.strategy)} ${r.overall.toFixed(2)}</text>`,
    );
  });
  if (paper.length) {
    const ly = m.t + 10 + report.strategies.length * 20;
    out.push(`<path d="M${W - m.r + 28} ${ly - 5} L${W - m.r + 33} ${ly} L${W - m.r + 28} ${ly + 5} L${W - m.r + 23} ${ly} Z" fill="none" stroke="#111827" stroke-width="1.5"/>`);
    out.push(`<text x="${W - m.r + 46}" y="${ly + 4}">paper (FLUX.1-dev)</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** The powers of two in [lo, hi], for the x axis's ticks. */
function powersOfTwo(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let p = 2 ** Math.ceil(Math.log2(lo) - 1e-9); p <= hi * (1 + 1e-9); p *= 2) out.push(p);
  return out;
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
