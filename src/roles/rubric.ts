/**
 * Rubric verification: the VLM scores an image 0–10 on a few aspects and overall. GenEval prompts (with `meta.tag`
 * one of the six GenEval tags) get a rubric for what that tag tests; any other prompt gets a general rubric. The
 * aspect names and descriptions are ours.
 */
import { z } from 'zod';
import { ModelOutputError } from '../core/errors.js';
import type { Evaluation } from '../core/types.js';
import { extractJson } from './json.js';

export const GENEVAL_TAGS = ['single_object', 'two_object', 'counting', 'colors', 'position', 'color_attr'] as const;
export type GenevalTag = (typeof GENEVAL_TAGS)[number];

export const OVERALL = 'overall_score';

export interface Rubric {
  /** the GenEval tag, or `general` */
  id: GenevalTag | 'general';
  /** aspect name → what a 10 means; `overall_score` is always last */
  aspects: Record<string, string>;
}

const OVERALL_TEXT = 'how well the image as a whole satisfies the prompt; a single missing or wrong element caps this at 5';

export const RUBRICS: Record<GenevalTag | 'general', Rubric> = {
  single_object: {
    id: 'single_object',
    aspects: {
      object_present: 'the named object is clearly in the image',
      object_intact: 'the object is whole, not cut off by the frame or hidden behind other things',
      recognisable: 'someone shown only the image would name the same object',
      [OVERALL]: OVERALL_TEXT,
    },
  },
  two_object: {
    id: 'two_object',
    aspects: {
      both_present: 'both named objects are in the image, each as a separate thing',
      kept_apart: 'the two objects are not merged or blended into one shape',
      each_intact: 'each object is whole and recognisable on its own',
      [OVERALL]: OVERALL_TEXT,
    },
  },
  counting: {
    id: 'counting',
    aspects: {
      count_exact: 'the number of instances is exactly the number in the prompt (none extra, none missing)',
      instances_distinct: 'each instance can be told apart and counted without guessing',
      instances_alike: 'every instance is the named kind of object',
      [OVERALL]: OVERALL_TEXT,
    },
  },
  colors: {
    id: 'colors',
    aspects: {
      colour_exact: 'the object has the colour the prompt names',
      colour_dominant: 'that colour covers most of the object, not only a detail',
      object_present: 'the named object is there and recognisable',
      [OVERALL]: OVERALL_TEXT,
    },
  },
  position: {
    id: 'position',
    aspects: {
      relation_exact: 'the objects stand in the spatial relation the prompt states (left of, right of, above, below)',
      both_present: 'both objects are in the image',
      layout_readable: 'the relation can be read at a glance, without overlap or odd perspective hiding it',
      [OVERALL]: OVERALL_TEXT,
    },
  },
  color_attr: {
    id: 'color_attr',
    aspects: {
      binding_exact: 'each colour belongs to the object the prompt gives it to (no swapped colours)',
      colours_exact: 'each object has a clear, correct colour',
      both_present: 'both objects are in the image',
      [OVERALL]: OVERALL_TEXT,
    },
  },
  general: {
    id: 'general',
    aspects: {
      prompt_alignment: 'every object, attribute, count and relation in the prompt is shown, and nothing contradicts it',
      visual_quality: 'the image is sharp and free of artefacts and distorted shapes',
      composition: 'the scene is laid out clearly and coherently',
      [OVERALL]: OVERALL_TEXT,
    },
  },
};

export function rubricFor(tag: unknown): Rubric {
  return typeof tag === 'string' && (GENEVAL_TAGS as readonly string[]).includes(tag) ? RUBRICS[tag as GenevalTag] : RUBRICS.general;
}

const score = z.number().min(0).max(10);
const aspectValue = z.union([score, z.object({ score, reason: z.string().optional() }).passthrough()]);

/** JSON Schema for structured output (OpenAI `json_schema` strict mode: every property required, no extras). */
export function rubricJsonSchema(rubric: Rubric): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (const name of Object.keys(rubric.aspects)) {
    properties[name] = {
      type: 'object',
      properties: { reason: { type: 'string' }, score: { type: 'number' } },
      required: ['reason', 'score'],
      additionalProperties: false,
    };
  }
  return { type: 'object', properties, required: Object.keys(rubric.aspects), additionalProperties: false };
}

/**
 * Parse and validate a rubric answer. Each aspect may be `{score, reason}` or a bare number. Throws
 * ModelOutputError naming what is wrong (that text goes into the repair request).
 */
export function parseRubric(text: string, rubric: Rubric): { aspects: Record<string, number>; reasons: Record<string, string> } {
  const json = extractJson(text);
  if (json === undefined || json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ModelOutputError('the answer holds no JSON object');
  }
  const shape: Record<string, typeof aspectValue> = {};
  for (const name of Object.keys(rubric.aspects)) shape[name] = aspectValue;
  const parsed = z.object(shape).passthrough().safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length ? issue.path.join('.') : 'the object';
    throw new ModelOutputError(`${where}: ${issue.message} (each aspect needs a score from 0 to 10)`);
  }
  const aspects: Record<string, number> = {};
  const reasons: Record<string, string> = {};
  for (const name of Object.keys(rubric.aspects)) {
    const v = (parsed.data as Record<string, z.infer<typeof aspectValue>>)[name]!;
    if (typeof v === 'number') aspects[name] = v;
    else {
      aspects[name] = v.score;
      if (typeof v.reason === 'string') reasons[name] = v.reason;
    }
  }
  return { aspects, reasons };
}

/**
 * The evaluation: `score` = the chosen metric / 10 (the metric is `overall_score` unless the option names another
 * aspect of this rubric; a metric the rubric lacks falls back to `overall_score`).
 */
export function rubricEvaluation(text: string, rubric: Rubric, metric: string): Evaluation {
  const { aspects } = parseRubric(text, rubric);
  const key = metric in aspects ? metric : OVERALL;
  return { score: aspects[key]! / 10, aspects, raw: text };
}
