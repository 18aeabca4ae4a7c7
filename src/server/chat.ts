/**
 * chat/completions over our roles. The model names the role; the user turn must be a request one of our VLM
 * backends writes (src/roles/templates.ts, read back with src/roles/requests.ts) or, for the verifier, one other
 * tools send:
 *
 * - verifier, yes/no question (ours, or one that names the prompt in quotes or after "prompt:") → one token, `yes`
 *   or `no` (the verifier's label), with `logprobs.content[0].top_logprobs` carrying log P(yes) and
 *   log P(no) = log(1 − P(yes)) when `logprobs: true`;
 * - verifier, our rubric request or any json_schema response_format → that JSON, filled from the verifier's one
 *   judgement (schema-answer.ts): `overall_score` = 10·P(yes); an aspect the verifier does not judge on its own
 *   repeats that number and says so in its explanation;
 * - reflector (ours or the Reflection-Generator's request) → `- instruction` lines, or `None`; JSON on request;
 * - refiner → the refined prompt on one line; JSON on request.
 */
import { randomUUID } from 'node:crypto';
import type { RoleInfo } from '../core/roles.js';
import type { Evaluation, Image, Reflection } from '../core/types.js';
import { readReflectionGeneratorText, readReflectRequest, readRefineRequest, readRubricRequest, readYesNoQuestion } from '../roles/requests.js';
import { GENEVAL_TAGS } from '../roles/rubric.js';
import { ApiError, badRequest } from './errors.js';
import type { HandlerContext } from './context.js';
import { readImage } from './images.js';
import { answerSchema, aspectJudgement } from './schema-answer.js';
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

type VerifierRequest =
  | { kind: 'yesno'; prompt: string }
  | { kind: 'rubric'; prompt: string; aspects: string[] }
  | { kind: 'schema'; prompt: string; schema: Record<string, unknown> };

const VERIFIER_ACCEPTS =
  'a yes/no question that names the prompt in double quotes or after "prompt:" (answered yes or no, with logprobs on request), ' +
  "our rubric request, or a json_schema response_format whose user text is the prompt or names it (see docs/backends.md, \"serve\")";

/** A prompt the text names: the first double-quoted span (straight or curly quotes), else the rest of a `prompt:` line. */
function namedPrompt(text: string): string | undefined {
  const quoted = /"([^"\n]+)"|“([^”\n]+)”/.exec(text);
  if (quoted) return (quoted[1] ?? quoted[2])!.trim() || undefined;
  return /\bprompt\s*:\s*([^\n]+)/i.exec(text)?.[1]!.trim() || undefined;
}

/**
 * What a verifier request asks: our yes/no question or rubric request (src/roles/templates.ts), a natural yes/no
 * question, or JSON of a schema (the official ReflectionFlow and tt-scale-flux verifiers send the bare prompt as the
 * user text, a system prompt and a json_schema response_format).
 */
function readVerifierRequest(text: string, body: ChatRequestBody): VerifierRequest {
  const ours = readYesNoQuestion(text);
  if (ours !== undefined) return { kind: 'yesno', prompt: ours };
  const schema = body.response_format?.type === 'json_schema' ? body.response_format.json_schema.schema : undefined;
  const rubric = readRubricRequest(text);
  if (rubric) return schema?.properties ? { kind: 'schema', prompt: rubric.prompt, schema } : { kind: 'rubric', ...rubric };
  const named = namedPrompt(text);
  if (schema) {
    const prompt = named ?? (/\n/.test(text.trim()) ? undefined : text.trim());
    if (prompt === undefined) throw badRequest(`the verifier could not tell the prompt: ${VERIFIER_ACCEPTS}`, 'messages', 'unrecognized_request');
    return { kind: 'schema', prompt, schema };
  }
  if (/\byes\s*(?:or|\/)\s*no\b/i.test(text)) {
    if (named === undefined) throw badRequest(`a yes/no question must name the prompt, in double quotes or after "prompt:"; the verifier answers ${VERIFIER_ACCEPTS}`, 'messages', 'unrecognized_request');
    return { kind: 'yesno', prompt: named };
  }
  throw badRequest(`the verifier model answers ${VERIFIER_ACCEPTS}; the user turn is none of these`, 'messages', 'unrecognized_request');
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
    const request = readVerifierRequest(turn.text, body);
    const image = await imageFromDataUrl(turn.imageUrl);
    const tag = rubricTag(body);
    const evaluation = await oneCall(ctx, verifier, () =>
      verifier.verify({ image, prompt: request.prompt, ...(request.kind !== 'yesno' && tag ? { meta: { tag } } : {}) }, { signal }),
    );
    const pYes = probabilityOfYes(evaluation);
    if (request.kind === 'yesno') {
      const label = evaluation.label ?? (pYes >= 0.5 ? 'yes' : 'no');
      if (!body.logprobs) return completion(body, label);
      const lp = (p: number) => (p > 0 ? Math.max(MIN_LOGPROB, Math.log(p)) : MIN_LOGPROB);
      const top = [tokenLogprob('yes', lp(pYes)), tokenLogprob('no', lp(1 - pYes))].sort((a, b) => b.logprob - a.logprob);
      const chosen = top.find((t) => t.token === label)!;
      const content = [{ ...chosen, top_logprobs: top.slice(0, body.top_logprobs ?? 0) }];
      return completion(body, label, { content, refusal: null });
    }
    if (request.kind === 'schema') return completion(body, JSON.stringify(answerSchema(request.schema, evaluation, pYes, verifier.name)));
    return completion(body, JSON.stringify(rubricAnswer(request.aspects, evaluation, pYes, verifier.name)));
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

/**
 * The GenEval tag a schema's name carries, for the verifier's meta: `rubric_<tag>` as the openai backend names it,
 * `Grading_<tag>` as the official ReflectionFlow verifier's pydantic models are named.
 */
function rubricTag(body: ChatRequestBody): string | undefined {
  if (body.response_format?.type !== 'json_schema') return undefined;
  const tag = /^(?:rubric|Grading)_(.+)$/.exec(body.response_format.json_schema.name)?.[1];
  return tag && (GENEVAL_TAGS as readonly string[]).includes(tag) ? tag : undefined;
}

/**
 * The rubric answer to our rubric request without a schema: every aspect it names, each `{reason, score}` on 0–10
 * (aspectJudgement: the verifier's own score for it, else 10·P(yes), saying it is not judged apart).
 */
export function rubricAnswer(aspects: string[], e: Evaluation, pYes: number, verifierName: string): Record<string, { reason: string; score: number }> {
  return Object.fromEntries(aspects.map((name) => [name, aspectJudgement(name, e, pYes, verifierName)]));
}
