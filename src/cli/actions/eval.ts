import { compositionalCheckPrompts } from '../../shapeworld/compositional.js';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkOutputDir, makeOutputDir } from '../../store/dirs.js';
import { loadConfigFile } from '../../config/load.js';
import { loadPromptList, type PromptRecord } from '../../config/prompts.js';
import { buildRoles, inputChecks } from '../../config/resolve.js';
import { checkPrompt } from '../../run.js';
import type { ConfigFile } from '../../config/schema.js';
import { RunIncomplete, UserError } from '../../core/errors.js';
import { resolvePrice } from '../../core/prices.js';
import { metaFor, runEval, type EvalRecord } from '../../eval/harness.js';
import type { EvalReport } from '../../eval/metrics.js';
import { armPlans, buildArms, parseStrategies, planJudge } from '../../eval/arms.js';
import { evaluatorJudge, verifierJudge } from '../../eval/judge.js';
import { markdownTable, scalingSvg } from '../../eval/output.js';
import { seedsPerPrompt, testPrompts } from '../../shapeworld/prompts.js';
import { validateSpec, type PromptSpec, type Tag } from '../../shapeworld/rules.js';

export interface EvalFlags {
  prompts?: string;
  split?: string;
  strategies: string;
  budgets: number[];
  backend?: string;
  config?: string;
  oracle?: boolean;
  stopAt?: number[];
  seeds?: number;
  width: number;
  seed: number;
  jobs: number;
  chainHead: 'latest' | 'best';
  limit?: number;
  out: string;
  cache?: string;
  auc?: boolean;
  quiet?: boolean;
  queue?: string;
  judge?: string;
  selfJudge?: boolean;
}

export async function evalAction(flags: EvalFlags): Promise<void> {
  const arms = parseStrategies(flags.strategies, Boolean(flags.oracle));
  const strategies = [...arms.map((a) => a.label), ...(flags.stopAt ?? []).flatMap((t) => arms.map((a) => `${a.label} stop@${t}`))];
  // nothing is written until every prompt and option has been checked: a refused eval leaves no folder behind
  checkOutputDir(flags.out);
  if (flags.cache) checkOutputDir(flags.cache, '--cache folder');
  const { records, freeForm } = evalRecords(flags);

  const config: ConfigFile = flags.config ? loadConfigFile(flags.config).config : {};
  if (flags.backend) config.backend = flags.backend;
  const judgeBackend = flags.judge ?? config.judge?.backend;
  if (freeForm && !judgeBackend) {
    throw new UserError(`${flags.prompts} is a free-form prompt list, which only a judge can score: give --judge <backend> (a verifier apart from the search's)`);
  }
  if (judgeBackend && flags.queue) throw new UserError('--judge does not run on --queue yet: run the eval in one process');
  // the evaluator must be able to judge every record before anything runs
  if (!judgeBackend) {
    records.forEach((r, i) => {
      try {
        validateSpec(r as unknown as PromptSpec);
      } catch (err) {
        throw new UserError(`prompt ${i + 1} ('${r.prompt}'): ${(err as Error).message}`);
      }
    });
  }

  const judgePlan = judgeBackend ? planJudge(config, judgeBackend, arms, Boolean(flags.selfJudge)) : null;
  // every prompt is one the search's roles (and the judge) can take, before anything runs: first what the backends
  // can check before their roles are made (the embedded models' cards), then the roles themselves
  const checkEvery = (check: (prompt: string) => void) =>
    records.forEach((r, i) => {
      try {
        check(r.prompt);
      } catch (err) {
        throw new UserError(`prompt ${i + 1} ('${r.prompt}'): ${(err as Error).message}`);
      }
    });
  checkEvery(inputChecks([...armPlans(config, arms), ...(judgePlan ? [judgePlan] : [])]).prompt);
  const { roles, plans, arms: evalArms } = await buildArms(config, arms, flags.stopAt);
  const judgeVerifier = judgePlan ? (await buildRoles([judgePlan])).verifier : null;
  const judgeRole = judgeVerifier ? verifierJudge(judgeVerifier, resolvePrice(judgeVerifier.name, config.prices), metaFor) : null;
  checkEvery((prompt) => {
    checkPrompt(roles, prompt);
    judgeVerifier?.checkPrompt?.(prompt);
  });
  if (flags.cache && !roles.generator.identity) {
    throw new UserError(`--cache needs a generator that declares its identity; '${roles.generator.name}' does not`);
  }
  // a free-form set costs real calls: one search per prompt unless asked
  const perTag: Partial<Record<Tag, number>> = freeForm ? {} : seedsPerPrompt(records as never);
  const seeds = flags.seeds ? () => flags.seeds! : (r: EvalRecord) => Math.max(1, perTag[r.tag as Tag] ?? 1);
  makeOutputDir(flags.out); // before an hour of work, not after
  if (flags.cache) makeOutputDir(flags.cache, '--cache folder');
  const started = new Date();
  let last = 0;
  const queued = flags.queue
    ? await (await import('../queued.js')).queuedEval(flags.queue, { records: records as PromptRecord[], seeds, arms, stopAt: flags.stopAt ?? [], config, out: flags.out, budgets: flags.budgets, width: flags.width, seed: flags.seed, chainHead: flags.chainHead, auc: Boolean(flags.auc), quiet: Boolean(flags.quiet), ...(flags.cache ? { cache: flags.cache } : {}) })
    : null;
  const report = queued ? queued.report : await runEval({
    records,
    strategies: evalArms,
    budgets: flags.budgets,
    roles,
    judge: judgeRole?.judge ?? evaluatorJudge,
    ...(judgeRole ? { judgeSummary: judgeRole.summary, timing: true } : {}),
    seedsPerPrompt: seeds,
    width: flags.width,
    seed: flags.seed,
    chainHead: flags.chainHead,
    verifierAuc: Boolean(flags.auc),
    jobs: flags.jobs,
    ...(config.prices ? { prices: config.prices } : {}),
    ...(flags.cache ? { cache: { dir: flags.cache, generatorKey: roles.generator.identity! } } : {}),
    onResult: (_s, done, total) => {
      if (flags.quiet) return;
      const now = Date.now();
      if (done === total || now - last > 2000) {
        last = now;
        process.stderr.write(`eval ${done}/${total} searches  ${((now - started.getTime()) / 1000).toFixed(0)}s\n`);
      }
    },
  });
  const dir = writeResults(flags.out, started, report, {
    prompts: flags.prompts ?? `split:${flags.split}`,
    strategies,
    budgets: flags.budgets,
    roles: Object.fromEntries(plans.map((p) => [p.role, p.backend])),
    oracle: flags.oracle ? true : arms.filter((a) => a.oracle).map((a) => a.label),
    width: flags.width,
    seed: flags.seed,
    chainHead: flags.chainHead,
    ...(judgeRole ? { judge: report.judge!.name, promptKind: freeForm ? 'free-form' : 'geneval' } : {}),
  });
  process.stdout.write(markdownTable(report, { paper: !flags.prompts && flags.split === 'test' && !report.judge }));
  process.stdout.write(`\nwall ${(report.wallMs / 1000).toFixed(1)}s; results in ${dir}\n`);
  await queued?.finish(dir);
  const failed = report.judge?.usage.failed ?? 0;
  if (failed) throw new RunIncomplete(`${failed} judge call${failed === 1 ? '' : 's'} failed; those searches are left out of the accuracies (results in ${dir})`);
}

/** The eval's prompts (a split or a prompt file; free-form when the file has no GenEval metadata), at most `--limit` per tag. */
function evalRecords(flags: EvalFlags): { records: EvalRecord[]; freeForm: boolean } {
  if (flags.prompts && flags.split) throw new UserError('give --prompts or --split, not both');
  let records: EvalRecord[];
  let freeForm = false;
  if (flags.prompts) {
    const list = loadPromptList(flags.prompts);
    records = list.records;
    freeForm = list.kind === 'free-form';
  } else if (flags.split === 'test') records = testPrompts();
  else if (flags.split === 'compositional') records = compositionalCheckPrompts();
  else if (flags.split) throw new UserError(`unknown split '${flags.split}' (eval splits: test, compositional)`);
  else throw new UserError('give the prompts: --split test|compositional or --prompts <file.jsonl>');
  if (flags.limit) {
    const seen = new Map<string, number>();
    records = records.filter((r) => {
      const n = (seen.get(r.tag) ?? 0) + 1;
      seen.set(r.tag, n);
      return n <= flags.limit!;
    });
  }
  return { records, freeForm };
}

function writeResults(out: string, started: Date, report: EvalReport, setup: Record<string, unknown>): string {
  const stamp = started.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const dir = path.resolve(out, `eval-${stamp}`);
  makeOutputDir(dir);
  const samples = [...report.samples].sort(
    (a, b) => a.tag.localeCompare(b.tag) || a.prompt.localeCompare(b.prompt) || a.seed - b.seed || a.strategy.localeCompare(b.strategy) || a.budget - b.budget,
  );
  const judge = report.judge ? { judge: report.judge } : {};
  const builtIn = report.builtInPrices ? { builtInPrices: report.builtInPrices } : {};
  writeFileSync(path.join(dir, 'results.json'), JSON.stringify({ setup, cells: report.cells, tags: report.tags, verifier: report.verifier ?? null, ...judge, ...builtIn, wallMs: report.wallMs }, null, 2) + '\n');
  writeFileSync(path.join(dir, 'samples.jsonl'), samples.map((s) => JSON.stringify(s)).join('\n') + '\n');
  // the paper's rows are GenEval detector scores: beside a VLM judge's accuracies they would mislead
  const paper = setup.prompts === 'split:test' && !report.judge;
  writeFileSync(path.join(dir, 'table.md'), markdownTable(report, { paper }));
  const verifier = setup.oracle === true ? 'oracle verifier' : 'configured verifier; @oracle: the evaluator';
  const title = report.judge
    ? `${setup.promptKind === 'free-form' ? path.basename(String(setup.prompts)) : 'GenEval-Shapes'}: judged accuracy vs budget (judge: ${report.judge.name})`
    : `GenEval-Shapes: overall vs budget (${verifier})`;
  writeFileSync(path.join(dir, 'scaling.svg'), scalingSvg(report, title, { paper }));
  return dir;
}
