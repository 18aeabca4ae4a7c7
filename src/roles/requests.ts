/**
 * The inverse of templates.ts: read a chat request that one of our VLM backends wrote back into the role request it
 * came from. `reflectionflow serve` uses these to answer our own clients over the OpenAI wire format. Each reader
 * accepts exactly the text its template function writes (and returns undefined for anything else), so a change to a
 * template that forgets its reader fails the round-trip tests.
 */
import type { Evaluation } from '../core/types.js';
import { REFINE_JSON_HINT, REFLECT_JSON_HINT } from './templates.js';

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const YESNO = /^Look at the image\. Does it show exactly what this text describes: "([\s\S]*)"\? Answer with one word, yes or no\.$/;

/** `yesNoQuestion(prompt)` → prompt. */
export function readYesNoQuestion(text: string): string | undefined {
  return YESNO.exec(text)?.[1];
}

const RUBRIC =
  /^Prompt: "([\s\S]*)"\n\nScore the image on each aspect from 0 \(not at all\) to 10 \(exactly right\):\n((?:- [^\n]*\n)+)\nAnswer with one JSON object and nothing else: \{[^\n]*\}$/;

/** `rubricUserText(prompt, rubric)` → the prompt and the rubric's aspect names, in order. */
export function readRubricRequest(text: string): { prompt: string; aspects: string[] } | undefined {
  const m = RUBRIC.exec(text);
  if (!m) return undefined;
  const aspects: string[] = [];
  for (const line of m[2]!.split('\n')) {
    const a = /^- ([A-Za-z0-9_]+): /.exec(line);
    if (a) aspects.push(a[1]!);
  }
  return aspects.length ? { prompt: m[1]!, aspects } : undefined;
}

const REFLECTION_GENERATOR = /^Generate reflections to improve the input image according to the prompt\. The prompt is: "([\s\S]*)"$/;

/** `reflectionGeneratorText(prompt)` → prompt. */
export function readReflectionGeneratorText(text: string): string | undefined {
  return REFLECTION_GENERATOR.exec(text)?.[1];
}

/**
 * `describeEvaluation(e)` → the evaluation as far as the text keeps it: the score (rounded to 2 decimals by the
 * template), the yes/no label, rubric aspects. `none` → undefined.
 */
export function readEvaluation(text: string): Evaluation | undefined {
  if (text === 'none') return undefined;
  const parts = text.split('; ');
  const score = /^score (-?[\d.e+-]+)$/.exec(parts[0] ?? '');
  if (!score || !Number.isFinite(Number(score[1]))) return undefined;
  const e: Evaluation = { score: Number(score[1]) };
  for (const part of parts.slice(1)) {
    const label = /^answer "(yes|no)"$/.exec(part);
    if (label) {
      e.label = label[1] as 'yes' | 'no';
      continue;
    }
    const aspects: Record<string, number> = {};
    for (const a of part.split(', ')) {
      const m = /^(.+) (-?[\d.e+-]+)\/10$/.exec(a);
      if (m && Number.isFinite(Number(m[2]))) aspects[m[1]!] = Number(m[2]);
    }
    if (Object.keys(aspects).length) e.aspects = aspects;
  }
  return e;
}

function readItems(block: string | undefined): string[] {
  if (!block) return [];
  return block
    .split('\n')
    .map((l) => /^ {2}- (.*)$/.exec(l)?.[1])
    .filter((x): x is string => x !== undefined);
}

function stripHint(text: string, hint: string): { text: string; json: boolean } {
  const tail = `\n${hint}`;
  return text.endsWith(tail) ? { text: text.slice(0, -tail.length), json: true } : { text, json: false };
}

const REFLECT = new RegExp(
  '^Original prompt: "([\\s\\S]*?)"\\n' +
    '(?:Prompt this image was made from: "([\\s\\S]*?)"\\n)?' +
    "Verifier's judgement of the image: ([^\\n]*)\\n" +
    '(?:Instructions given for the previous image \\(repeat any the image still needs\\):\\n((?: {2}- [^\\n]*\\n)+))?' +
    '\\nWrite the instructions for this image\\.$',
);

export interface ReadReflectRequest {
  prompt: string;
  currentPrompt: string;
  evaluation?: Evaluation;
  previousItems: string[];
  /** the text asked for JSON output (`{"instructions": [...]}`) */
  json: boolean;
}

/** `reflectUserText(...)` (with or without REFLECT_JSON_HINT) → its parts. */
export function readReflectRequest(text: string): ReadReflectRequest | undefined {
  const { text: body, json } = stripHint(text, REFLECT_JSON_HINT);
  const m = REFLECT.exec(body);
  if (!m) return undefined;
  const evaluation = readEvaluation(m[3]!);
  return {
    prompt: m[1]!,
    currentPrompt: m[2] ?? m[1]!,
    ...(evaluation ? { evaluation } : {}),
    previousItems: readItems(m[4]),
    json,
  };
}

const REFINE = new RegExp(
  '^Original prompt: "([\\s\\S]*?)"\\n' +
    'Prompt of the last image: "([\\s\\S]*?)"\\n' +
    "Verifier's judgement of the last image: ([^\\n]*)\\n" +
    '(?:Correction instructions for the last image:\\n((?: {2}- [^\\n]*\\n)+))?' +
    `\\n${escapeRe('Answer with the new prompt only.')}$`,
);

export interface ReadRefineRequest {
  prompt: string;
  currentPrompt: string;
  evaluation?: Evaluation;
  reflectionItems: string[];
  /** the text asked for JSON output (`{"prompt": "..."}`) */
  json: boolean;
}

/** `refineUserText(...)` (with or without REFINE_JSON_HINT) → its parts. */
export function readRefineRequest(text: string): ReadRefineRequest | undefined {
  const { text: body, json } = stripHint(text, REFINE_JSON_HINT);
  const m = REFINE.exec(body);
  if (!m) return undefined;
  const evaluation = readEvaluation(m[3]!);
  return {
    prompt: m[1]!,
    currentPrompt: m[2]!,
    ...(evaluation ? { evaluation } : {}),
    reflectionItems: readItems(m[4]),
    json,
  };
}
