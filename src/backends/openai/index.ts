/**
 * OpenAI and OpenAI-compatible servers (vLLM, SGLang, Ollama, LM Studio, …) through the `openai` SDK with a
 * configurable `baseUrl`:
 *
 * - chat (vision) roles: verifier (`mode: rubric` | `yesno`), reflector, prompt refiner — images go as
 *   `data:image/png;base64,…` URLs;
 * - Images API roles: generator (`images.generate`) and corrector (`images.edit` with the image and
 *   `prompt [Reflexion]: reflection`).
 *
 * The key comes from the environment variable `apiKeyEnv` names (default OPENAI_API_KEY); with a `baseUrl` it is
 * optional (local servers usually take none).
 */
import OpenAI, { toFile } from 'openai';
import type { ChatCompletionContentPart, ChatCompletionCreateParamsNonStreaming, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { ModelOutputError } from '../../core/errors.js';
import { correctorInstruction, type CallOptions, type Corrector, type Generator, type Verifier, type VerifyRequest } from '../../core/roles.js';
import type { Evaluation, Image } from '../../core/types.js';
import { imageCorrector, imageFromBase64, imageFromUrl, imageGenerator, pngDataUrl } from '../http/images.js';
import { OptionReader } from '../options.js';
import { readReliability, ReliableClient } from '../http/reliability.js';
import { readApiKey, refuseInlineSecrets } from '../http/secrets.js';
import { OVERALL } from '../../roles/rubric.js';
import { YESNO_REPAIR, yesNoQuestion } from '../../roles/templates.js';
import { chatRoleInfo, makeReflector, makeRefiner, makeRubricVerifier, withOneRepair, type ChatRequest, type VlmChat, type VlmRoleOptions } from '../../roles/vlm.js';
import { yesNoEvaluation, type TokenLogprob } from '../../roles/yesno.js';
import { reportUsage } from '../../core/usage.js';

export interface OpenAIBackend {
  verifier: Verifier;
  reflector: ReturnType<typeof makeReflector>;
  refiner: ReturnType<typeof makeRefiner>;
  generator: Generator;
  corrector: Corrector;
}

function readOptions(options: Record<string, unknown>) {
  refuseInlineSecrets('openai', options);
  const r = new OptionReader('openai', options);
  const baseUrl = r.string('baseUrl');
  const o = {
    baseUrl,
    apiKey: readApiKey('openai', r.string('apiKeyEnv'), 'OPENAI_API_KEY', baseUrl === undefined),
    model: r.string('model', 'gpt-4o'),
    // gpt-image-1 was retired on 2026-10-23 (OpenAI's model page); gpt-image-2 is the Images API's current model in openai-node
    imageModel: r.string('imageModel', 'gpt-image-2'),
    mode: r.oneOf('mode', ['rubric', 'yesno'] as const, 'rubric'),
    metric: r.string('metric', OVERALL),
    structuredOutput: r.bool('structuredOutput', true),
    template: r.oneOf('template', ['default', 'reflection-generator'] as const, 'default'),
    output: r.oneOf('output', ['text', 'json'] as const, 'text'),
    maxTokens: r.int('maxTokens', 0, 0) || undefined,
    temperature: r.number('temperature', undefined, 0, 2),
    imageSize: r.string('size'),
    quality: r.string('quality'),
    responseFormat: r.has('responseFormat') ? r.oneOf('responseFormat', ['b64_json', 'url'] as const, 'b64_json') : undefined,
    sendSeed: r.bool('sendSeed', false),
    rel: readReliability(r, { timeoutMs: 120_000, concurrency: 4 }),
  };
  r.check();
  return o;
}

type OpenAIOptions = ReturnType<typeof readOptions>;

export function createOpenAIBackend(options: Record<string, unknown> = {}): OpenAIBackend {
  const o = readOptions(options);
  const http = new ReliableClient('openai', o.rel);
  const client = new OpenAI({
    apiKey: o.apiKey ?? 'none',
    ...(o.baseUrl ? { baseURL: o.baseUrl } : {}),
    maxRetries: 0, // the reliability layer retries
    timeout: o.rel.timeoutMs + 1_000, // our deadline fires first
    fetch: http.fetch,
  });

  const chat: VlmChat = {
    async complete(req, signal) {
      const body: ChatCompletionCreateParamsNonStreaming = {
        model: o.model,
        messages: toMessages(req),
        ...(req.maxTokens ? { max_tokens: req.maxTokens } : {}),
        ...(o.temperature !== undefined ? { temperature: o.temperature } : {}),
        ...(req.json
          ? { response_format: { type: 'json_schema', json_schema: { name: req.json.name, schema: req.json.schema, strict: true } } }
          : {}),
      };
      const res = await client.chat.completions.create(body, { signal });
      reportUsage({ inputTokens: res.usage?.prompt_tokens, outputTokens: res.usage?.completion_tokens });
      const content = res.choices?.[0]?.message?.content;
      if (typeof content !== 'string') throw new ModelOutputError('the answer has no text content');
      return content;
    },
  };
  const roleOpts: VlmRoleOptions = {
    name: `openai:${o.model}`,
    concurrency: http.concurrency,
    limitGroup: http.limitGroup,
    run: http.run.bind(http),
    metric: o.metric,
    structuredOutput: o.structuredOutput,
    output: o.output,
    template: o.template,
    ...(o.maxTokens ? { maxTokens: o.maxTokens } : {}),
  };
  return {
    verifier: o.mode === 'yesno' ? yesNoVerifier(client, http, o) : makeRubricVerifier(chat, roleOpts),
    reflector: makeReflector(chat, roleOpts),
    refiner: makeRefiner(chat, roleOpts),
    ...imageRoles(client, http, o),
  };
}

/**
 * The yes/no verifier reads the answer's logprobs (P(yes) from the first token's top alternatives), which the
 * shared chat port does not carry: one token, asked again once with a repair turn when it is neither.
 */
function yesNoVerifier(client: OpenAI, http: ReliableClient, o: OpenAIOptions): Verifier {
  const ask = async (req: VerifyRequest, signal: AbortSignal, problem?: string): Promise<Evaluation> => {
    const repair = problem === undefined ? undefined : { previous: '', text: YESNO_REPAIR };
    const res = await client.chat.completions.create(
      {
        model: o.model,
        messages: toMessages({ text: yesNoQuestion(req.prompt), image: req.image, ...(repair ? { repair } : {}) }),
        max_tokens: 1,
        logprobs: true,
        top_logprobs: 5,
        temperature: o.temperature ?? 0,
      },
      { signal },
    );
    reportUsage({ inputTokens: res.usage?.prompt_tokens, outputTokens: res.usage?.completion_tokens });
    const choice = res.choices?.[0];
    const first = choice?.logprobs?.content?.[0];
    const answer = choice?.message?.content ?? first?.token ?? '';
    const top: TokenLogprob[] = (first?.top_logprobs ?? []).map((t) => ({ token: t.token, logprob: t.logprob }));
    if (first && !top.some((t) => t.token === first.token)) top.push({ token: first.token, logprob: first.logprob });
    if (!first) throw new ModelOutputError('the answer carries no logprobs (does the server support logprobs?)');
    return yesNoEvaluation(answer, top);
  };
  return {
    ...chatRoleInfo({ name: `openai:${o.model}`, concurrency: http.concurrency, limitGroup: http.limitGroup }),
    verify: (req: VerifyRequest, opts?: CallOptions) => http.run('verify', (signal) => withOneRepair((problem) => ask(req, signal, problem)), opts?.signal),
  };
}

/** The Images API's generator (images.generate) and corrector (images.edit). */
function imageRoles(client: OpenAI, http: ReliableClient, o: OpenAIOptions): { generator: Generator; corrector: Corrector } {
  const name = `openai:${o.imageModel}`;
  const params = (): Record<string, unknown> => ({
    model: o.imageModel,
    n: 1,
    ...(o.imageSize ? { size: o.imageSize } : {}),
    ...(o.quality ? { quality: o.quality } : {}),
    ...(o.responseFormat ? { response_format: o.responseFormat } : {}),
  });
  const firstImage = async (res: OpenAI.Images.ImagesResponse, signal: AbortSignal, what: string): Promise<Image> => {
    reportUsage({ inputTokens: res.usage?.input_tokens, outputTokens: res.usage?.output_tokens });
    const d = res.data?.[0];
    if (d?.b64_json) return imageFromBase64(d.b64_json, what);
    if (d?.url) return imageFromUrl(d.url, http.fetch, signal, what);
    throw new ModelOutputError(`${what}: the answer holds no image (neither b64_json nor url)`);
  };
  const seed = (s: number) => (o.sendSeed ? { seed: s } : {});
  const generator = imageGenerator(http, {
    name,
    identity: `openai:${o.baseUrl ?? 'api.openai.com'}:${o.imageModel}:${o.imageSize ?? ''}:${o.quality ?? ''}`,
    make: async (req, signal) => {
      const body = { ...params(), prompt: req.prompt, ...seed(req.seed) };
      return firstImage(await client.images.generate(body as unknown as OpenAI.Images.ImageGenerateParamsNonStreaming, { signal }), signal, 'generate');
    },
  });
  const corrector = imageCorrector(http, {
    name,
    make: async (req, signal) => {
      const image = await toFile(req.image.png, 'image.png', { type: 'image/png' });
      const body = { ...params(), image, prompt: correctorInstruction(req.prompt, req.reflection), ...seed(req.seed) };
      return firstImage(await client.images.edit(body as unknown as OpenAI.Images.ImageEditParamsNonStreaming, { signal }), signal, 'correct');
    },
  });
  return { generator, corrector };
}

/** A chat request as OpenAI messages: system, the user turn (image, then text), and the repair turns. */
export function toMessages(req: ChatRequest): ChatCompletionMessageParam[] {
  const messages: ChatCompletionMessageParam[] = [];
  if (req.system) messages.push({ role: 'system', content: req.system });
  const content: ChatCompletionContentPart[] = [];
  if (req.image) content.push({ type: 'image_url', image_url: { url: pngDataUrl(req.image) } });
  content.push({ type: 'text', text: req.text });
  messages.push({ role: 'user', content });
  if (req.repair) {
    if (req.repair.previous) messages.push({ role: 'assistant', content: req.repair.previous });
    messages.push({ role: 'user', content: req.repair.text });
  }
  return messages;
}

export { openaiProvider } from './provider.js';
