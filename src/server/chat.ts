/**
 * chat/completions over our roles. The model names the role; the user turn must be the request one of our VLM
 * backends writes (src/roles/templates.ts), read back with src/roles/requests.ts:
 *
 * - verifier, yes/no question → one token, `yes` or `no` (the verifier's label), with `logprobs.content[0]
 *   .top_logprobs` carrying log P(yes) and log P(no) = log(1 − P(yes)) when `logprobs: true`;
 * - verifier, rubric request → the rubric JSON: `overall_score` = 10·P(yes); an aspect the verifier does not judge
 *   on its own repeats that number and says so in its reason;
 * - reflector (ours or the Reflection-Generator's request) → `- instruction` lines, or `None`; JSON on request;
 * - refiner → the refined prompt on one line; JSON on request.
 */
import { randomUUID } from 'node:crypto';
import type { RoleInfo } from '../core/roles.js';
import type { Evaluation, Image, Reflection } from '../core/types.js';
import { readReflectionGeneratorText, readReflectRequest, readRefineRequest, readRubricRequest, readYesNoQuestion } from '../roles/requests.js';
import { GENEVAL_TAGS, OVERALL } from '../roles/rubric.js';
import { ApiError, badRequest } from './errors.js';
import type { HandlerContext } from './context.js';
import { readImage } from './images.js';
import { roleForModel } from './models.js';
import { chatRequestSchema, MAX_PROMPT, validate, type ChatRequestBody } from './schemas.js';

/** A role request carries a prompt or two (each at most MAX_PROMPT) and a template around them. */
const MAX_TURN_TEXT = 4 * MAX_PROMPT;

/** Log-probabilities are finite on the wire (JSON has no −Infinity); this stands for P = 0, as OpenAI does. */
export const MIN_LOGPROB = -9999;

/**
 * P(yes) from a verifier's evaluation: its own `p_yes` when it reports one, else the score when it lies in [0, 1]
 * (the embedded verifier's score is P(yes); the procedural oracle's is 1 for a correct image, else 0.9 × the share of
 * satisfied clauses; rubric verifiers give overall/10).
 */
export function probabilityOfYes(e: Evaluation): number {
  const p = e.aspects?.p_yes;
  if (typeof p === 'number' && p >= 0 && p <= 1) return p;
  if (Number.isFinite(e.score) && e.score >= 0 && e.score <= 1) return e.score;
  throw new ApiError(500, `the verifier's score ${e.score} is not a probability in [0, 1]`, 'verifier_score_out_of_range');
}

/** The user turn that carries the request: the first user message with an image; its text parts joined. */
function requestTurn(body: ChatRequestBody): { text: string; imageUrl: string } {
  for (const [i, m] of body.messages.entries()) {
    if (m.role !== 'user' || !Array.isArray(m.content)) continue;
    const image = m.content.find((p) => p.type === 'image_url');
    if (!image || image.type !== 'image_url') continue;
    const text = m.content.flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('\n');
    if (!text) throw badRequest(`messages.${i} has an image but no text part`, `messages.${i}.content`, 'invalid_value');
    if (text.length > MAX_TURN_TEXT) {
      throw badRequest(`messages.${i} has ${text.length} characters of text; a role request has at most ${MAX_TURN_TEXT}`, `messages.${i}.content`, 'invalid_value');
    }
    return { text, imageUrl: image.image_url.url };
  }
  throw badRequest('no user message with an image_url part: every role judges an image', 'messages', 'missing_required_parameter');
}

async function imageFromDataUrl(url: string): Promise<Image> {
  const m = /^data:([\w.+-]+\/[\w.+-]+)?(;[^,]*)?,(.*)$/s.exec(url);
  if (!m) throw badRequest('image_url must be a data: URL (this server fetches nothing)', 'messages.image_url', 'invalid_image_url');
  if (!/;base64$/i.test(m[2] ?? '')) throw badRequest('image_url data: URL must be base64', 'messages.image_url', 'invalid_image_url');
  return readImage(new Uint8Array(Buffer.from(m[3]!, 'base64')), 'messages.image_url');
}

function wantsJson(body: ChatRequestBody): boolean {
  return body.response_format?.type === 'json_schema' || body.response_format?.type === 'json_object';
}

function notOurRequest(role: string, expected: string): ApiError {
  return badRequest(
    `the ${role} model answers ${expected} as reflectionflow's openai backend writes it (see docs/backends.md, "serve"); the user turn is not one`,
    'messages',
    'unrecognized_request',
  );
}

function completion(body: ChatRequestBody, content: string, logprobs: unknown = null) {
  return {
    id: `chatcmpl-${randomUUID()}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: body.model,
    choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs, finish_reason: 'stop' }],
  };
}

function tokenLogprob(token: string, logprob: number) {
  return { token, logprob, bytes: [...Buffer.from(token, 'utf8')] };
}

async function oneCall<T>(ctx: HandlerContext, role: RoleInfo, make: () => Promise<T>): Promise<T> {
  return (await ctx.calls(role, 1, make))[0]!;
}

export async function handleChat(ctx: HandlerContext, raw: unknown) {
  const body = validate(chatRequestSchema, raw);
  if (body.stream) throw badRequest('stream is not supported', 'stream', 'unsupported_value');
  if ((body.n ?? 1) !== 1) throw badRequest('n must be 1', 'n', 'unsupported_value');
  if (body.top_logprobs && !body.logprobs) throw badRequest('top_logprobs needs logprobs: true', 'top_logprobs', 'invalid_value');
  const role = roleForModel(ctx.roles, body.model, 'chat/completions', ['verifier', 'reflector', 'refiner']);
  const turn = requestTurn(body);
  const signal = ctx.signal;

  if (role === 'verifier') {
    const verifier = ctx.roles.verifier!;
    const yesNoPrompt = readYesNoQuestion(turn.text);
    const rubric = yesNoPrompt === undefined ? readRubricRequest(turn.text) : undefined;
    if (yesNoPrompt === undefined && !rubric) throw notOurRequest('verifier', 'a yes/no question or a rubric request');
    const image = await imageFromDataUrl(turn.imageUrl);
    const prompt = yesNoPrompt ?? rubric!.prompt;
    const tag = rubricTag(body);
    const evaluation = await oneCall(ctx, verifier, () =>
      verifier.verify({ image, prompt, ...(rubric && tag ? { meta: { tag } } : {}) }, { signal }),
    );
    const pYes = probabilityOfYes(evaluation);
    if (yesNoPrompt !== undefined) {
      const label = evaluation.label ?? (pYes >= 0.5 ? 'yes' : 'no');
      if (!body.logprobs) return completion(body, label);
      const lp = (p: number) => (p > 0 ? Math.max(MIN_LOGPROB, Math.log(p)) : MIN_LOGPROB);
      const top = [tokenLogprob('yes', lp(pYes)), tokenLogprob('no', lp(1 - pYes))].sort((a, b) => b.logprob - a.logprob);
      const chosen = top.find((t) => t.token === label)!;
      const content = [{ ...chosen, top_logprobs: top.slice(0, body.top_logprobs ?? 0) }];
      return completion(body, label, { content, refusal: null });
    }
    const aspects = schemaAspects(body) ?? rubric!.aspects;
    return completion(body, JSON.stringify(rubricAnswer(aspects, evaluation, pYes, verifier.name)));
  }

  if (role === 'reflector') {
    const reflector = ctx.roles.reflector!;
    const ours = readReflectRequest(turn.text);
    const rgPrompt = ours ? undefined : readReflectionGeneratorText(turn.text);
    if (!ours && rgPrompt === undefined) throw notOurRequest('reflector', 'a reflection request (ours or the Reflection-Generator format)');
    const image = await imageFromDataUrl(turn.imageUrl);
    const previous: Reflection | undefined = ours?.previousItems.length ? { text: ours.previousItems.join('\n'), items: ours.previousItems } : undefined;
    const reflection = await oneCall(ctx, reflector, () =>
      reflector.reflect(
        {
          image,
          prompt: ours?.prompt ?? rgPrompt!,
          currentPrompt: ours?.currentPrompt ?? rgPrompt!,
          ...(ours?.evaluation ? { evaluation: ours.evaluation } : {}),
          ...(previous ? { previousReflection: previous } : {}),
        },
        { signal },
      ),
    );
    const items = reflectionItems(reflection);
    if (wantsJson(body) || ours?.json) return completion(body, JSON.stringify({ instructions: items }));
    return completion(body, items.length ? items.map((i) => `- ${i}`).join('\n') : 'None');
  }

  const refiner = ctx.roles.refiner!;
  const req = readRefineRequest(turn.text);
  if (!req) throw notOurRequest('refiner', 'a prompt refinement request');
  const image = await imageFromDataUrl(turn.imageUrl);
  const reflection: Reflection | undefined = req.reflectionItems.length ? { text: req.reflectionItems.join('\n'), items: req.reflectionItems } : undefined;
  const refined = await oneCall(ctx, refiner, () =>
    refiner.refine(
      {
        prompt: req.prompt,
        currentPrompt: req.currentPrompt,
        image,
        ...(req.evaluation ? { evaluation: req.evaluation } : {}),
        ...(reflection ? { reflection } : {}),
      },
      { signal },
    ),
  );
  const oneLine = refined.replace(/\s*\r?\n\s*/g, ' ').trim();
  if (wantsJson(body) || req.json) return completion(body, JSON.stringify({ prompt: oneLine }));
  return completion(body, oneLine);
}

/** A reflection's instructions, one line each (a reflection without items: its text's lines). */
function reflectionItems(r: Reflection): string[] {
  return r.items.flatMap((i) => i.split(/\r?\n/)).map((i) => i.trim()).filter(Boolean);
}

/** `rubric_<tag>` as the openai backend names its schema → the GenEval tag, for the verifier's meta. */
function rubricTag(body: ChatRequestBody): string | undefined {
  if (body.response_format?.type !== 'json_schema') return undefined;
  const tag = /^rubric_(.+)$/.exec(body.response_format.json_schema.name)?.[1];
  return tag && (GENEVAL_TAGS as readonly string[]).includes(tag) ? tag : undefined;
}

/** The aspect names a json_schema response_format asks for (its required keys, else its properties). */
function schemaAspects(body: ChatRequestBody): string[] | undefined {
  if (body.response_format?.type !== 'json_schema') return undefined;
  const schema = body.response_format.json_schema.schema as { required?: unknown; properties?: unknown } | undefined;
  if (Array.isArray(schema?.required) && schema.required.every((k) => typeof k === 'string') && schema.required.length) return schema.required as string[];
  if (schema?.properties && typeof schema.properties === 'object') {
    const keys = Object.keys(schema.properties);
    if (keys.length) return keys;
  }
  return undefined;
}

/**
 * The rubric answer. `overall_score` = 10·P(yes). An aspect the verifier scored itself (a rubric verifier behind
 * the server) keeps its score; any other aspect repeats 10·P(yes), and its reason says that it is not judged apart.
 */
export function rubricAnswer(aspects: string[], e: Evaluation, pYes: number, verifierName: string): Record<string, { reason: string; score: number }> {
  const overall = 10 * pYes;
  const out: Record<string, { reason: string; score: number }> = {};
  for (const name of aspects) {
    const own = name !== OVERALL && name !== 'p_yes' && name !== 'p_no' ? e.aspects?.[name] : undefined;
    if (typeof own === 'number' && own >= 0 && own <= 10) {
      out[name] = { reason: `scored by the ${verifierName} verifier`, score: own };
    } else if (name === OVERALL) {
      out[name] = { reason: `10 × P(yes) = 10 × ${pYes.toFixed(4)} from the ${verifierName} verifier${e.label ? ` (answer ${e.label})` : ''}`, score: overall };
    } else {
      out[name] = { reason: `not judged apart: the ${verifierName} verifier gives one judgement, so this repeats overall_score = 10 × P(yes)`, score: overall };
    }
  }
  return out;
}
