/**
 * One scaling plot from several `reflectionflow eval` results, each line labelled (e.g. the learned verifier and the
 * oracle run on the same noise pools):
 *
 *   node dist/bench/scaling-plot.js --out docs/scaling.svg --title "…" "learned verifier=evals/A/results.json" "oracle=evals/B/results.json"
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { EvalReport } from '../eval/metrics.js';
import { scalingSvg } from '../eval/output.js';

export function mergeReports(inputs: ReadonlyArray<{ label: string; report: EvalReport }>): EvalReport {
  const budgets = [...new Set(inputs.flatMap((i) => i.report.budgets))].sort((a, b) => a - b);
  const cells = inputs.flatMap(({ label, report }) =>
    report.cells.map((c) => ({ ...c, strategy: (report.strategies.length > 1 ? `${label} ${c.strategy}` : label) as EvalReport['strategies'][number] })),
  );
  return { ...inputs[0]!.report, strategies: [...new Set(cells.map((c) => c.strategy))], budgets, cells, verifier: undefined } as EvalReport;
}

function main(argv: string[]): number {
  let out = '';
  let title = 'Overall score vs budget';
  const inputs: Array<{ label: string; report: EvalReport }> = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--out') out = argv[++i] ?? '';
    else if (a === '--title') title = argv[++i] ?? title;
    else {
      const eq = a.indexOf('=');
      if (eq <= 0) {
        process.stderr.write(`expected label=results.json, got '${a}'\n`);
        return 2;
      }
      const raw = JSON.parse(readFileSync(a.slice(eq + 1), 'utf8')) as { setup: { strategies: EvalReport['strategies']; budgets: number[] } } & EvalReport;
      inputs.push({ label: a.slice(0, eq), report: { ...raw, strategies: raw.setup.strategies, budgets: raw.setup.budgets } });
    }
  }
  if (!out || inputs.length === 0) {
    process.stderr.write('usage: scaling-plot --out FILE.svg [--title T] label=results.json ...\n');
    return 2;
  }
  writeFileSync(out, scalingSvg(mergeReports(inputs), title));
  process.stderr.write(`wrote ${out}\n`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
