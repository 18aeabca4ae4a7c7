/**
 * Yes/no verification (NVILA-style): the VLM answers one token, yes or no, to "does the image match the prompt?";
 * P(yes) and P(no) come from that token's top log-probabilities.
 *
 * The official ranking puts every "yes" image before every "no" image, "yes" images by high P(yes) and "no" images
 * by low P(no). One number carries that order:
 *
 *     yes → score = 1 + P(yes)   ∈ [1, 2]
 *     no  → score = 1 − P(no)    ∈ [0, 1]
 *
 * so higher is better and sorting by score alone reproduces the official order. (The official code compares
 * logits of the yes/no token; we compare probabilities, the same order within a label when the other tokens'
 * mass is small.)
 */
import { ModelOutputError } from '../core/errors.js';
import type { Evaluation } from '../core/types.js';

export interface TokenLogprob {
  token: string;
  logprob: number;
}

function norm(token: string): string {
  return token.trim().toLowerCase().replace(/[^a-z]/g, '');
}

export function yesNoScore(label: 'yes' | 'no', pYes: number, pNo: number): number {
  return label === 'yes' ? 1 + pYes : 1 - pNo;
}

/**
 * `answer` is the token the model produced; `top` its top alternatives (the answer among them). Throws
 * ModelOutputError when neither yes nor no is among the alternatives.
 */
export function yesNoEvaluation(answer: string, top: TokenLogprob[]): Evaluation {
  let pYes = 0;
  let pNo = 0;
  for (const t of top) {
    const w = norm(t.token);
    if (w === 'yes') pYes += Math.exp(t.logprob);
    else if (w === 'no') pNo += Math.exp(t.logprob);
  }
  const said = norm(answer);
  let label: 'yes' | 'no';
  if (said === 'yes' || said === 'no') label = said;
  else if (pYes > 0 || pNo > 0) label = pYes >= pNo ? 'yes' : 'no';
  else throw new ModelOutputError(`the answer ${JSON.stringify(answer.slice(0, 40))} is neither yes nor no, and neither is among its top tokens`);
  pYes = Math.min(1, pYes);
  pNo = Math.min(1, pNo);
  return {
    score: yesNoScore(label, pYes, pNo),
    label,
    aspects: { p_yes: pYes, p_no: pNo },
    raw: answer,
  };
}
