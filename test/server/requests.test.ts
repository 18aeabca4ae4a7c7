/** src/roles/requests.ts reads back exactly what src/roles/templates.ts writes. */
import { describe, expect, it } from 'vitest';
import { readEvaluation, readReflectionGeneratorText, readReflectRequest, readRefineRequest, readRubricRequest, readYesNoQuestion } from '../../src/roles/requests.js';
import { RUBRICS } from '../../src/roles/rubric.js';
import {
  describeEvaluation,
  REFINE_JSON_HINT,
  REFLECT_JSON_HINT,
  reflectionGeneratorText,
  reflectUserText,
  refineUserText,
  rubricUserText,
  yesNoQuestion,
} from '../../src/roles/templates.js';
import { splitCorrectorInstruction } from '../../src/server/images.js';
import { correctorInstruction } from '../../src/core/roles.js';
import { probabilityOfYes, rubricAnswer } from '../../src/server/chat.js';

const PROMPTS = ['a photo of a red circle', 'a "quoted" prompt: with colons; and "more quotes"', 'two lines\nof prompt', 'ends with a quote"'];

describe('template readers', () => {
  it.each(PROMPTS)('yes/no question, rubric and Reflection-Generator request round-trip: %j', (prompt) => {
    expect(readYesNoQuestion(yesNoQuestion(prompt))).toBe(prompt);
    for (const rubric of Object.values(RUBRICS)) {
      expect(readRubricRequest(rubricUserText(prompt, rubric))).toEqual({ prompt, aspects: Object.keys(rubric.aspects) });
    }
    expect(readReflectionGeneratorText(reflectionGeneratorText(prompt))).toBe(prompt);
    expect(readYesNoQuestion(rubricUserText(prompt, RUBRICS.general))).toBeUndefined();
    expect(readRubricRequest(yesNoQuestion(prompt))).toBeUndefined();
  });

  it.each(PROMPTS)('reflect and refine requests round-trip with every optional part: %j', (prompt) => {
    const evaluations = [undefined, { score: 0.25, label: 'no' as const }, { score: 0.8, aspects: { a: 8, overall_score: 7.5 } }];
    const previous = [undefined, { text: 'Add one red circle\nMove the square left', items: ['Add one red circle', 'Move the square left'] }];
    for (const evaluation of evaluations) {
      for (const prev of previous) {
        for (const current of [prompt, `${prompt}, refined`]) {
          for (const json of [false, true]) {
            const rt = reflectUserText(prompt, current, evaluation, prev) + (json ? `\n${REFLECT_JSON_HINT}` : '');
            expect(readReflectRequest(rt)).toEqual({ prompt, currentPrompt: current, ...(evaluation ? { evaluation } : {}), previousItems: prev?.items ?? [], json });
            const ft = refineUserText(prompt, current, evaluation, prev) + (json ? `\n${REFINE_JSON_HINT}` : '');
            expect(readRefineRequest(ft)).toEqual({ prompt, currentPrompt: current, ...(evaluation ? { evaluation } : {}), reflectionItems: prev?.items ?? [], json });
            expect(readRefineRequest(rt)).toBeUndefined();
            expect(readReflectRequest(ft)).toBeUndefined();
          }
        }
      }
    }
  });

  it('evaluations keep what describeEvaluation keeps (2 decimals)', () => {
    expect(readEvaluation(describeEvaluation({ score: 0.123456, label: 'yes' }))).toEqual({ score: 0.12, label: 'yes' });
    expect(readEvaluation('none')).toBeUndefined();
    expect(readEvaluation('rubbish')).toBeUndefined();
  });
});

describe('corrector instruction', () => {
  it('splits back into prompt and reflection items, CRLF or LF', () => {
    const reflection = { text: 'Add one red circle\nRemove the blue square', items: ['Add one red circle', 'Remove the blue square'] };
    const text = correctorInstruction('a red circle', reflection);
    expect(splitCorrectorInstruction(text)).toEqual({ prompt: 'a red circle', reflection });
    expect(splitCorrectorInstruction(text.replace(/\n/g, '\r\n'))).toEqual({ prompt: 'a red circle', reflection });
    expect(splitCorrectorInstruction('a red circle [Reflexion]: ')).toEqual({ prompt: 'a red circle', reflection: { text: '', items: [] } });
    expect(splitCorrectorInstruction('make it red')).toBeUndefined();
  });
});

describe('verifier answers', () => {
  it('P(yes): p_yes when reported, else a score in [0, 1]; a score outside is an error', () => {
    expect(probabilityOfYes({ score: 1.7, aspects: { p_yes: 0.7, p_no: 0.3 } })).toBe(0.7);
    expect(probabilityOfYes({ score: 0.4 })).toBe(0.4);
    expect(() => probabilityOfYes({ score: 3 })).toThrow(/not a probability/);
  });

  it('rubric: overall = 10·P(yes); aspects the verifier scored keep their score; others repeat overall and say so', () => {
    const a = rubricAnswer(['x', 'overall_score'], { score: 0.6, aspects: { x: 3, overall_score: 6 } }, 0.6, 'v');
    expect(a.x!.score).toBe(3);
    expect(a.overall_score!.score).toBeCloseTo(6);
    const b = rubricAnswer(['y', 'overall_score'], { score: 0.25, label: 'no' }, 0.25, 'embedded');
    expect(b.y).toEqual({ score: 2.5, reason: expect.stringMatching(/not judged apart/) });
  });
});
