/**
 * Role logic shared by every chat-style VLM backend (OpenAI-compatible, Gemini): what to ask, how to read the
 * answer, and one repair request when the answer is malformed. A backend supplies only `VlmChat.complete`.
 */
import { ModelOutputError } from '../core/errors.js';
import type {
  CallOptions,
  RoleInfo,
  PromptRefiner,
  RefineRequest,
  ReflectRequest,
  Reflector,
  Verifier,
  VerifyRequest,
} from '../core/roles.js';
import type { Evaluation, Image, Reflection } from '../core/types.js';
import { extractJson } from './json.js';
import { parseRefinedPrompt, parseReflection, reflectionFromJson } from './reflection.js';
import { rubricEvaluation, rubricFor, rubricJsonSchema } from './rubric.js';
import {
  REFINE_JSON_HINT,
  REFINE_SYSTEM,
  REFLECT_JSON_HINT,
  REFLECT_SYSTEM,
  REFLECTION_GENERATOR_SYSTEM,
  RUBRIC_SYSTEM,
  refineUserText,
  reflectionGeneratorText,
  reflectUserText,
  repairText,
  rubricUserText,
} from './templates.js';

export interface ChatRequest {
  system?: string;
  /** the user turn: the image first (when given), then the text */
  text: string;
  image?: Image;
  /** ask for JSON matching this schema (structured output), when the service supports it */
  json?: { name: string; schema: Record<string, unknown> };
  maxTokens?: number;
  /** a repair turn: the model's previous answer and what was wrong with it */
  repair?: { previous: string; text: string };
}

export interface VlmChat {
  complete(req: ChatRequest, signal: AbortSignal): Promise<string>;
}

/** How a role call runs on its backend (the reliability layer: slot, deadline, retries, error scrubbing). */
export type Runner = <T>(what: string, fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal) => Promise<T>;

/**
 * Ask, parse; on ModelOutputError ask once more with the bad answer and the problem; a second failure throws
 * ModelOutputError (the search records the failed call).
 */
export async function askWithRepair<T>(
  chat: VlmChat,
  req: ChatRequest,
  parse: (text: string) => T,
  format: string,
  signal: AbortSignal,
): Promise<T> {
  let previous = '';
  return withOneRepair(async (problem) => {
    const text = await chat.complete(problem === undefined ? req : { ...req, repair: { previous, text: repairText(problem, format) } }, signal);
    previous = text;
    return parse(text);
  });
}

/**
 * The repair rule of every VLM role: one attempt, and when its answer is unusable (ModelOutputError) exactly one more,
 * told what was wrong; a second unusable answer is the call's failure.
 */
export async function withOneRepair<T>(attempt: (problem?: string) => Promise<T>): Promise<T> {
  let problem: string;
  try {
    return await attempt();
  } catch (err) {
    if (!(err instanceof ModelOutputError)) throw err;
    problem = err.message;
  }
  try {
    return await attempt(problem);
  } catch (err) {
    if (!(err instanceof ModelOutputError)) throw err;
    throw new ModelOutputError(`malformed answer after one repair request: ${err.message}`);
  }
}

export interface VlmRoleOptions {
  name: string;
  concurrency: number;
  limitGroup: object;
  run: Runner;
  /** which rubric aspect is the score (default overall_score) */
  metric: string;
  /** send a JSON schema (structured output) with rubric requests */
  structuredOutput: boolean;
  /** reflector/refiner answer format: free text, or JSON (services with a JSON mode) */
  output: 'text' | 'json';
  /** reflector template: ours, or the official Reflection-Generator's single-turn interface */
  template: 'default' | 'reflection-generator';
  maxTokens?: number;
}

/** What a role object of a chat backend declares: the backend's name and the concurrency limit all its roles share. */
export function chatRoleInfo(o: Pick<VlmRoleOptions, 'name' | 'concurrency' | 'limitGroup'>): RoleInfo {
  return { name: o.name, concurrency: o.concurrency, limitGroup: o.limitGroup };
}

export function makeRubricVerifier(chat: VlmChat, o: VlmRoleOptions): Verifier {
  const ask = (req: VerifyRequest, signal: AbortSignal): Promise<Evaluation> => {
    const rubric = rubricFor(req.meta?.tag);
    const chatReq: ChatRequest = {
      system: RUBRIC_SYSTEM,
      text: rubricUserText(req.prompt, rubric),
      image: req.image,
      ...(o.structuredOutput ? { json: { name: `rubric_${rubric.id}`, schema: rubricJsonSchema(rubric) } } : {}),
      ...(o.maxTokens ? { maxTokens: o.maxTokens } : {}),
    };
    const format = `a JSON object with the keys ${Object.keys(rubric.aspects).join(', ')}, each {"reason": string, "score": number 0-10}`;
    return askWithRepair(chat, chatReq, (t) => rubricEvaluation(t, rubric, o.metric), format, signal);
  };
  return { ...chatRoleInfo(o), verify: (req: VerifyRequest, opts?: CallOptions) => o.run('verify', (signal) => ask(req, signal), opts?.signal) };
}

export function makeReflector(chat: VlmChat, o: VlmRoleOptions): Reflector {
  const ask = (req: ReflectRequest, signal: AbortSignal): Promise<Reflection> => {
    const maxTokens = o.maxTokens ? { maxTokens: o.maxTokens } : {};
    if (o.template === 'reflection-generator') {
      const chatReq: ChatRequest = { system: REFLECTION_GENERATOR_SYSTEM, text: reflectionGeneratorText(req.prompt), image: req.image, ...maxTokens };
      return askWithRepair(chat, chatReq, parseReflection, 'one instruction per line, each starting with "- "', signal);
    }
    const json = o.output === 'json';
    const chatReq: ChatRequest = {
      system: REFLECT_SYSTEM,
      text: reflectUserText(req.prompt, req.currentPrompt, req.evaluation, req.previousReflection) + (json ? `\n${REFLECT_JSON_HINT}` : ''),
      image: req.image,
      ...(json ? { json: { name: 'reflection', schema: REFLECTION_SCHEMA } } : {}),
      ...maxTokens,
    };
    const parse = json ? (t: string) => reflectionFromJson(needJson(t)) : parseReflection;
    const format = json ? '{"instructions": [string, ...]}' : 'one instruction per line, each starting with "- "';
    return askWithRepair(chat, chatReq, parse, format, signal);
  };
  return { ...chatRoleInfo(o), reflect: (req: ReflectRequest, opts?: CallOptions) => o.run('reflect', (signal) => ask(req, signal), opts?.signal) };
}

export function makeRefiner(chat: VlmChat, o: VlmRoleOptions): PromptRefiner {
  const ask = (req: RefineRequest, signal: AbortSignal): Promise<string> => {
    const json = o.output === 'json';
    const chatReq: ChatRequest = {
      system: REFINE_SYSTEM,
      text: refineUserText(req.prompt, req.currentPrompt, req.evaluation, req.reflection) + (json ? `\n${REFINE_JSON_HINT}` : ''),
      image: req.image,
      ...(json ? { json: { name: 'refined_prompt', schema: REFINED_SCHEMA } } : {}),
      ...(o.maxTokens ? { maxTokens: o.maxTokens } : {}),
    };
    const parse = json ? (t: string) => promptFromJson(needJson(t)) : parseRefinedPrompt;
    return askWithRepair(chat, chatReq, parse, json ? '{"prompt": string}' : 'the new prompt alone, on one line', signal);
  };
  return { ...chatRoleInfo(o), refine: (req: RefineRequest, opts?: CallOptions) => o.run('refine', (signal) => ask(req, signal), opts?.signal) };
}

const REFLECTION_SCHEMA: Record<string, unknown> = {
  type: 'object',
  properties: { instructions: { type: 'array', items: { type: 'string' } } },
  required: ['instructions'],
  additionalProperties: false,
};

const REFINED_SCHEMA: Record<string, unknown> = {
  type: 'object',
  properties: { prompt: { type: 'string' } },
  required: ['prompt'],
  additionalProperties: false,
};

function needJson(text: string): unknown {
  const json = extractJson(text);
  if (json === undefined) throw new ModelOutputError('the answer holds no JSON object');
  return json;
}

function promptFromJson(json: unknown): string {
  const p = (json as { prompt?: unknown } | null)?.prompt;
  if (typeof p !== 'string' || !p.trim()) throw new ModelOutputError('expected {"prompt": "<non-empty string>"}');
  return p.trim();
}
