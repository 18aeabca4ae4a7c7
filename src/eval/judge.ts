/**
 * The judge role of `eval --judge <backend>`: a backend's verifier that decides, apart from the search, whether each
 * final image satisfies its prompt. Its calls are counted here, never in the search's usage.
 */
import { RoleLimits } from '../core/limits.js';
import { errorMessage } from '../core/errors.js';
import type { Verifier } from '../core/roles.js';
import type { Evaluation, PromptMeta } from '../core/types.js';
import type { PriceSource, ResolvedPrice } from '../core/prices.js';
import { addCall, emptyRoleUsage, priceOf, withUsage, type RoleUsage } from '../core/usage.js';
import { evaluateImage } from '../shapeworld/evaluate.js';
import type { PromptSpec } from '../shapeworld/rules.js';
import type { EvalRecord, Judge } from './harness.js';

/** The default judge of ShapeWorld prompts: the evaluator, GenEval's rules on pixels. */
export const evaluatorJudge: Judge = async (png, record) => evaluateImage(png, record as unknown as PromptSpec);

/**
 * A rubric's overall score is capped at 5 of 10 by a single missing or wrong element (the rubric's own wording),
 * so an image passes above 5: nothing the prompt asks for is missing or wrong.
 */
export const RUBRIC_PASS = 0.5;

export interface JudgeSummary {
  /** the judge's backend name, e.g. `openai:gpt-4o` */
  name: string;
  /** how verdicts were read: a yes/no answer, or a rubric's overall score above 5 of 10 */
  kinds: Array<'yes/no' | 'rubric'>;
  usage: RoleUsage;
  /** from the config's price table or the built-in one; null without a price for the judge's backend */
  price: number | null;
  /** where and when the judge's price was read, when it is a built-in one */
  builtIn?: PriceSource;
}

/** A yes/no evaluation passes on `yes`; a rubric evaluation (no label) above RUBRIC_PASS. */
export function passes(e: Evaluation): boolean {
  return e.label !== undefined ? e.label === 'yes' : e.score > RUBRIC_PASS;
}

export function verifierJudge(verifier: Verifier, price: ResolvedPrice | null, meta: (record: EvalRecord) => PromptMeta | undefined): { judge: Judge; summary(): JudgeSummary } {
  const usage = emptyRoleUsage();
  const kinds = new Set<'yes/no' | 'rubric'>();
  const limits = new RoleLimits();
  const judge: Judge = (png, record) =>
    limits.run(verifier, async () => {
      const started = performance.now();
      const m = meta(record);
      const out = await withUsage(() => verifier.verify({ image: { png }, prompt: record.prompt, ...(m ? { meta: m } : {}) }));
      const error = out.failed ? errorMessage(out.error) : undefined;
      addCall(usage, { ms: Math.round(performance.now() - started), usage: out.usage, ...(error !== undefined ? { error } : {}) });
      if (error !== undefined) return { correct: false, error };
      const e = out.result!;
      kinds.add(e.label !== undefined ? 'yes/no' : 'rubric');
      return { correct: passes(e), score: e.score };
    });
  return {
    judge,
    summary: () => ({
      name: verifier.name,
      kinds: [...kinds].sort(),
      usage: { ...usage },
      price: priceOf(usage, price?.price),
      ...(price?.builtIn ? { builtIn: price.builtIn } : {}),
    }),
  };
}
