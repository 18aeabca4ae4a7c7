/**
 * How the embedded verifier reads a prompt: parsed to its GenEval spec (the same parser the evaluator's callers use)
 * and laid out as a fixed row of integers. The verifier is a neural module network: the parse picks which learned
 * modules (find class+colour, count, relate) run and how they combine, so a colour–shape pair or a relation it never
 * saw together in training is read from parts it did see.
 *
 * Layout (SPEC_VERSION 1), INCLUDE_SLOTS include clauses then EXCLUDE_SLOTS exclude clauses:
 *   include: class id (1..6, 0 = empty slot), colour id (0 = any, 1..10), count, relation (0 = none, 1 left of,
 *            2 right of, 3 above, 4 below), index of the clause it relates to
 *   exclude: class id (0 = empty slot), count
 * Class and colour ids follow SHAPES and COLORS order, from 1.
 */
import { UserError } from '../../core/errors.js';
import { parsePrompt } from '../../shapeworld/prompts.js';
import { canonicalSpec, RELATIONS, validateSpec, type PromptSpec } from '../../shapeworld/rules.js';

export { canonicalSpec };
import { COLORS, SHAPES, type Color, type Shape } from '../../shapeworld/shapes.js';

export const SPEC_VERSION = 1;
export const INCLUDE_SLOTS = 4;
export const EXCLUDE_SLOTS = 4;
export const INCLUDE_FIELDS = 5;
export const EXCLUDE_FIELDS = 2;
export const SPEC_LENGTH = INCLUDE_SLOTS * INCLUDE_FIELDS + EXCLUDE_SLOTS * EXCLUDE_FIELDS;
/** the largest count the model's counter tells apart (its last state means "this many or more") */
export const MAX_COUNT = 9;

/** The layout, as the model card records it (the training side decodes by it). */
export const SPEC_LAYOUT = {
  version: SPEC_VERSION,
  includeSlots: INCLUDE_SLOTS,
  includeFields: ['class', 'color', 'count', 'relation', 'target'],
  excludeSlots: EXCLUDE_SLOTS,
  excludeFields: ['class', 'count'],
  classes: ['<none>', ...SHAPES],
  colors: ['<any>', ...COLORS],
  relations: ['<none>', ...RELATIONS],
  maxCount: MAX_COUNT,
} as const;

export function encodeSpec(input: PromptSpec): Int32Array {
  validateSpec(input);
  const spec = canonicalSpec(input);
  if (spec.include.length > INCLUDE_SLOTS) {
    throw new UserError(`the embedded verifier reads at most ${INCLUDE_SLOTS} objects per prompt; this one names ${spec.include.length}`);
  }
  const exclude = spec.exclude ?? [];
  if (exclude.length > EXCLUDE_SLOTS) {
    throw new UserError(`the embedded verifier reads at most ${EXCLUDE_SLOTS} exact counts per prompt; this one has ${exclude.length}`);
  }
  const counts = [...spec.include, ...exclude].map((c) => c.count);
  if (counts.some((n) => n > MAX_COUNT)) {
    // an exact count n is "at least n and not at least n + 1", so exactly MAX_COUNT is already out of reach
    throw new UserError(
      `the embedded verifier counts up to ${MAX_COUNT} objects (exact counts up to ${MAX_COUNT - 1}); this prompt needs a count of ${Math.max(...counts)}`,
    );
  }
  const out = new Int32Array(SPEC_LENGTH);
  spec.include.forEach((c, i) => {
    const o = i * INCLUDE_FIELDS;
    out[o] = classId(c.class);
    out[o + 1] = c.color === undefined ? 0 : COLORS.indexOf(c.color as Color) + 1;
    out[o + 2] = c.count;
    if (c.position) {
      out[o + 3] = RELATIONS.indexOf(c.position[0]) + 1;
      out[o + 4] = c.position[1];
    }
  });
  exclude.forEach((c, i) => {
    const o = INCLUDE_SLOTS * INCLUDE_FIELDS + i * EXCLUDE_FIELDS;
    out[o] = classId(c.class);
    out[o + 1] = c.count;
  });
  return out;
}

/** Parse and encode a prompt; a prompt the parser cannot read (an empty one too) is the user's error, named by it. */
export function encodePrompt(prompt: string): Int32Array {
  return encodeSpec(parsePrompt(prompt));
}

// validateSpec has checked every class and colour
function classId(cls: string): number {
  return SHAPES.indexOf(cls as Shape) + 1;
}
