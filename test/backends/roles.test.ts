/** Role-level parsing shared by the VLM backends (src/roles/). */
import { describe, expect, it } from 'vitest';
import { ModelOutputError } from '../../src/core/errors.js';
import { extractJson } from '../../src/roles/json.js';
import { parseRefinedPrompt, parseReflection, reflectionFromJson } from '../../src/roles/reflection.js';
import { RUBRICS, rubricEvaluation, rubricFor } from '../../src/roles/rubric.js';
import { yesNoEvaluation } from '../../src/roles/yesno.js';

describe('reflection parsing', () => {
  it('one item per instruction; headings, bullets, numbering and None dropped', () => {
    const r = parseReflection('1. Prompt Following:\n- Add a blue cup to the left of the plate.\n* Remove the fork at the bottom right.\n2) Move the apple to the centre.\n\nStyle:\n- None');
    expect(r.items).toEqual(['Add a blue cup to the left of the plate.', 'Remove the fork at the bottom right.', 'Move the apple to the centre.']);
    expect(r.text).toBe(r.items.join('\n'));
  });
  it('"None" alone is an empty reflection; an empty answer is malformed', () => {
    expect(parseReflection('None.')).toEqual({ text: '', items: [] });
    expect(() => parseReflection(' \n ')).toThrow(ModelOutputError);
    expect(() => reflectionFromJson({ instructions: [1] })).toThrow(ModelOutputError);
  });
  it('refined prompt: first line, label and quotes removed', () => {
    expect(parseRefinedPrompt('Refined prompt: "two red cubes, side by side"\n(explanation)')).toBe('two red cubes, side by side');
    expect(() => parseRefinedPrompt('```\n```')).toThrow(ModelOutputError);
  });
});

describe('rubric', () => {
  it('picks the GenEval rubric by tag, else the general one', () => {
    expect(rubricFor('color_attr')).toBe(RUBRICS.color_attr);
    expect(rubricFor('unknown')).toBe(RUBRICS.general);
    expect(rubricFor(undefined)).toBe(RUBRICS.general);
  });
  it('rejects a score out of range or a missing aspect', () => {
    expect(() => rubricEvaluation('{"prompt_alignment": 5, "visual_quality": 5, "composition": 5}', RUBRICS.general, 'overall_score')).toThrow(/overall_score/);
    expect(() => rubricEvaluation('{"prompt_alignment": 5, "visual_quality": 5, "composition": 5, "overall_score": 12}', RUBRICS.general, 'overall_score')).toThrow(ModelOutputError);
  });
  it('a metric the rubric lacks falls back to overall_score', () => {
    const ev = rubricEvaluation('{"prompt_alignment": 2, "visual_quality": 5, "composition": 5, "overall_score": 6}', RUBRICS.general, 'count_exact');
    expect(ev.score).toBeCloseTo(0.6);
  });
  it('extracts the first balanced object, braces inside strings included', () => {
    expect(extractJson('sure: {"a": "x}y", "b": {"c": 1}} thanks')).toEqual({ a: 'x}y', b: { c: 1 } });
    expect(extractJson('no json here')).toBeUndefined();
  });
});

describe('yes/no', () => {
  it('sums case variants and encodes the official order in one score', () => {
    const yes = yesNoEvaluation(' Yes', [{ token: ' Yes', logprob: Math.log(0.5) }, { token: 'yes', logprob: Math.log(0.2) }, { token: 'No', logprob: Math.log(0.3) }]);
    expect(yes.label).toBe('yes');
    expect(yes.score).toBeCloseTo(1.7);
    const no = yesNoEvaluation('no', [{ token: 'no', logprob: Math.log(0.6) }, { token: 'yes', logprob: Math.log(0.4) }]);
    expect(no.score).toBeCloseTo(0.4);
    expect(yes.score).toBeGreaterThan(no.score);
    expect(() => yesNoEvaluation('hmm', [{ token: 'hmm', logprob: 0 }])).toThrow(ModelOutputError);
  });
});
