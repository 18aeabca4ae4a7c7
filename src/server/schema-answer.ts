/**
 * A verifier's judgement as the JSON a `response_format: json_schema` request asks for (the official ReflectionFlow
 * and tt-scale-flux OpenAI verifiers: `{aspect: {score: int, explanation: str}, …, overall_score: {…}}`). Fields
 * are filled by what they mean: a score, an explanation, the yes/no answer, a match flag. Anything else is a 400
 * naming the field, never a made-up value.
 */
import type { Evaluation } from '../core/types.js';
import { OVERALL } from '../roles/rubric.js';
import { badRequest } from './errors.js';

type Schema = Record<string, unknown>;

/** One aspect's judgement on 0–10: the verifier's own score for it, else 10·P(yes), and why. */
export function aspectJudgement(name: string, e: Evaluation, pYes: number, verifierName: string): { reason: string; score: number } {
  const own = name !== OVERALL && name !== 'p_yes' && name !== 'p_no' ? e.aspects?.[name] : undefined;
  if (typeof own === 'number' && own >= 0 && own <= 10) return { reason: `scored by the ${verifierName} verifier`, score: own };
  if (name === OVERALL || name === '') {
    return { reason: `10 × P(yes) = 10 × ${pYes.toFixed(4)} from the ${verifierName} verifier${e.label ? ` (answer ${e.label})` : ''}`, score: 10 * pYes };
  }
  return { reason: `not judged apart: the ${verifierName} verifier gives one judgement, so this repeats overall_score = 10 × P(yes)`, score: 10 * pYes };
}

const SCORE = /score|rating|grade|points/i;
const PROBABILITY = /prob|confidence|p_yes/i;
const EXPLANATION = /explanation|reason|rationale|justification|comment|feedback|analysis|critique/i;
const ANSWER = /answer|label|verdict|decision/i;
const MATCH = /match|correct|pass|aligned|consistent|faithful|satisf/i;
const FILLABLE = 'score/rating/grade/probability numbers, explanation/reason strings, answer/label/verdict (yes or no), and match/correct/pass booleans';

/** The JSON `schema` asks for, filled from the evaluation. */
export function answerSchema(schema: Schema, e: Evaluation, pYes: number, verifierName: string): unknown {
  const label = e.label ?? (pYes >= 0.5 ? 'yes' : 'no');
  const resolve = (s: Schema): Schema => {
    const ref = s.$ref;
    if (typeof ref !== 'string') return s;
    const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(ref);
    const target = m ? (schema[m[1]!] as Record<string, Schema> | undefined)?.[m[2]!] : undefined;
    if (!target) throw cannotFill(ref, `an unresolvable $ref '${ref}'`);
    return resolve(target);
  };
  const fill = (raw: Schema, path: string, key: string, aspect: string): unknown => {
    const s = resolve(raw);
    const variants = (s.anyOf ?? s.oneOf) as Schema[] | undefined;
    const type = Array.isArray(s.type) ? (s.type as string[]).find((t) => t !== 'null') : s.type ?? (s.properties ? 'object' : variants ? 'variants' : undefined);
    if (type === 'variants') return fill(variants!.find((v) => resolve(v).type !== 'null') ?? variants![0]!, path, key, aspect);
    const judged = aspectJudgement(aspect, e, pYes, verifierName);
    if (type === 'object') {
      const props = (s.properties ?? {}) as Record<string, Schema>;
      if (!Object.keys(props).length) throw cannotFill(path || 'the answer', 'an object without properties');
      // a property that is itself an object is an aspect; its fields describe that aspect
      return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, fill(v, path ? `${path}.${k}` : k, k, resolve(v).properties ? k : aspect)]));
    }
    if (type === 'number' || type === 'integer') {
      if (!SCORE.test(key) && !PROBABILITY.test(key)) throw cannotFill(path, `a number '${key}' that is not a score`);
      // a range is a scale to map onto; zod writes ±MAX_SAFE_INTEGER for a bare int, which is none
      const bound = (v: unknown) => (typeof v === 'number' && Math.abs(v) < Number.MAX_SAFE_INTEGER ? v : undefined);
      const lo = bound(s.minimum);
      const hi = bound(s.maximum);
      const share = judged.score / 10;
      const value = lo !== undefined && hi !== undefined ? lo + share * (hi - lo) : PROBABILITY.test(key) ? share : judged.score;
      return type === 'integer' ? Math.round(value) : value;
    }
    if (type === 'string') {
      const options = Array.isArray(s.enum) ? (s.enum as unknown[]).filter((x): x is string => typeof x === 'string') : undefined;
      if (options) {
        const pick = options.find((o) => o.toLowerCase() === label);
        if (!pick) throw cannotFill(path, `a choice of ${options.map((o) => `'${o}'`).join(', ')} without yes or no`);
        return pick;
      }
      if (EXPLANATION.test(key)) return judged.reason;
      if (ANSWER.test(key)) return label;
      throw cannotFill(path, `a string '${key}' that is not an explanation or an answer`);
    }
    if (type === 'boolean') {
      if (!MATCH.test(key) && !ANSWER.test(key)) throw cannotFill(path, `a boolean '${key}' that is not a match flag`);
      return label === 'yes';
    }
    throw cannotFill(path || 'the answer', `a field of type ${String(type ?? 'unknown')}`);
  };
  return fill(schema, '', '', '');
}

function cannotFill(path: string, what: string) {
  return badRequest(
    `response_format json_schema: cannot fill '${path}', ${what}; the verifier gives one judgement (P(yes), yes or no) and fills ${FILLABLE}`,
    'response_format',
    'unfillable_schema',
  );
}
