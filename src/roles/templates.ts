/**
 * Our prompt templates for VLM roles. They follow the method (concrete, executable edits judged against the
 * original prompt; a refined prompt that keeps the original content) but the wording is ours.
 *
 * The one fixed format is the official Reflection-Generator's interface (`template: 'reflection-generator'`): the
 * model was fine-tuned on a single-turn conversation — a generic assistant system message and one user turn with
 * the image and one instruction line naming the prompt — so we send that shape and nothing else.
 */
import type { Evaluation, Reflection } from '../core/types.js';
import type { Rubric } from './rubric.js';

export function describeEvaluation(e: Evaluation | undefined): string {
  if (!e) return 'none';
  const parts = [`score ${round(e.score)}`];
  if (e.label) parts.push(`answer "${e.label}"`);
  if (e.aspects && !e.label) {
    parts.push(Object.entries(e.aspects).map(([k, v]) => `${k} ${round(v)}/10`).join(', '));
  }
  return parts.join('; ');
}

function round(x: number): string {
  return String(Math.round(x * 100) / 100);
}

// ---- verifier: rubric ----

export const RUBRIC_SYSTEM =
  'You are a strict judge of text-to-image results. You look at one image and the text prompt it was made from, ' +
  'and you score how faithfully the image shows what the prompt asks for. Judge only what is visible. Be exact ' +
  'about objects, counts, colours and spatial relations; a wrong count or colour is a serious fault even in a ' +
  'beautiful image.';

export function rubricUserText(prompt: string, rubric: Rubric): string {
  const lines = Object.entries(rubric.aspects).map(([name, what]) => `- ${name}: ${what}`);
  const example = Object.keys(rubric.aspects)
    .map((name) => `"${name}": {"reason": "<one sentence>", "score": <0-10>}`)
    .join(', ');
  return [
    `Prompt: "${prompt}"`,
    '',
    'Score the image on each aspect from 0 (not at all) to 10 (exactly right):',
    ...lines,
    '',
    `Answer with one JSON object and nothing else: {${example}}`,
  ].join('\n');
}

// ---- verifier: yes/no ----

export function yesNoQuestion(prompt: string): string {
  return `Look at the image. Does it show exactly what this text describes: "${prompt}"? Answer with one word, yes or no.`;
}

export const YESNO_REPAIR = 'Answer with exactly one word: yes or no.';

// ---- reflector ----

export const REFLECT_SYSTEM = [
  'You write correction instructions for a text-to-image result. Compare the image with the ORIGINAL prompt, part',
  'by part (each object, its count, its colour, its position relative to the others), and list what must change so',
  'the image matches it.',
  '',
  'Rules:',
  '- One instruction per line, each starting with "- ".',
  '- Start each instruction with a concrete action verb: Add, Remove, Replace, Move, Recolor, Resize.',
  '- Say where: name the object and a location (left, right, top, bottom, centre, next to the <object>).',
  '- Name exact counts and colours ("Add one more red apple to the right of the bowl").',
  '- Never use vague words such as ensure, improve, enhance, better, adjust, consider, or make sure.',
  '- Most serious mismatch first. Do not describe what is already correct. Do not explain.',
  '- If the image already matches the original prompt, answer with the single word None.',
].join('\n');

export function reflectUserText(
  prompt: string,
  currentPrompt: string,
  evaluation: Evaluation | undefined,
  previous: Reflection | undefined,
): string {
  const lines = [`Original prompt: "${prompt}"`];
  if (currentPrompt !== prompt) lines.push(`Prompt this image was made from: "${currentPrompt}"`);
  lines.push(`Verifier's judgement of the image: ${describeEvaluation(evaluation)}`);
  if (previous && previous.items.length) {
    lines.push('Instructions given for the previous image (repeat any the image still needs):');
    for (const item of previous.items) lines.push(`  - ${item}`);
  }
  lines.push('', 'Write the instructions for this image.');
  return lines.join('\n');
}

export const REFLECT_JSON_HINT =
  'Answer with one JSON object and nothing else: {"instructions": ["<instruction>", ...]} (an empty list when nothing must change).';

/** The Reflection-Generator's interface: its system message and its one-line request naming the prompt. */
export const REFLECTION_GENERATOR_SYSTEM = 'You are a helpful assistant.';
export function reflectionGeneratorText(prompt: string): string {
  return `Generate reflections to improve the input image according to the prompt. The prompt is: "${prompt}"`;
}

// ---- prompt refiner ----

export const REFINE_SYSTEM = [
  'You rewrite prompts for a text-to-image model so that its next image fixes the faults of the last one.',
  '',
  'Rules:',
  '- Keep everything the original prompt asks for: every object, count, colour and spatial relation. Drop nothing.',
  '- Make the faults impossible to miss: spell out counts ("exactly three"), colours per object, and relations.',
  '- Follow the correction instructions when given; never write anything that contradicts them or the original prompt.',
  '- Add no new objects or attributes the original prompt does not ask for.',
  '- One line, at most 60 words.',
].join('\n');

export function refineUserText(
  prompt: string,
  currentPrompt: string,
  evaluation: Evaluation | undefined,
  reflection: Reflection | undefined,
): string {
  const lines = [`Original prompt: "${prompt}"`, `Prompt of the last image: "${currentPrompt}"`];
  lines.push(`Verifier's judgement of the last image: ${describeEvaluation(evaluation)}`);
  if (reflection && reflection.items.length) {
    lines.push('Correction instructions for the last image:');
    for (const item of reflection.items) lines.push(`  - ${item}`);
  }
  lines.push('', 'Answer with the new prompt only.');
  return lines.join('\n');
}

export const REFINE_JSON_HINT = 'Answer with one JSON object and nothing else: {"prompt": "<the new prompt>"}.';

// ---- repair ----

export function repairText(problem: string, format: string): string {
  return `Your answer could not be used: ${problem}. Answer again, in this exact format and with nothing else: ${format}`;
}
