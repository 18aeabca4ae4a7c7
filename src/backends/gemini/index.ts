/**
 * Google Gemini through `@google/genai` (Gemini Developer API, `generateContent`):
 *
 * - VLM roles: rubric verifier, reflector and prompt refiner, asking for JSON (`responseMimeType:
 *   application/json` with `responseJsonSchema`) — the shared role logic validates and repairs once;
 * - image roles with an image-output model (default `gemini-2.5-flash-image`): generator (text → image, with
 *   `seed`) and corrector (image + `prompt [Reflexion]: reflection` → image).
 *
 * The yes/no verifier needs token log-probabilities, which we do not take from Gemini: `mode: yesno` is refused.
 * `baseUrl` replaces the API host (a proxy, or a local server in tests). The key comes from $GEMINI_API_KEY
 * (`apiKeyEnv`) and travels in the `x-goog-api-key` header.
 */
import { GoogleGenAI, type Content, type GenerateContentConfig, type GenerateContentResponse, type Part } from '@google/genai';
import { ModelOutputError, UserError } from '../../core/errors.js';
import { correctorInstruction, type Corrector, type Generator, type PromptRefiner, type Reflector, type Verifier } from '../../core/roles.js';
import type { Image } from '../../core/types.js';
import { imageCorrector, imageFromBase64, imageGenerator, pngBase64 } from '../http/images.js';
import { OptionReader } from '../options.js';
import { readReliability, ReliableClient } from '../http/reliability.js';
import { readApiKey, refuseInlineSecrets } from '../http/secrets.js';
import { OVERALL } from '../../roles/rubric.js';
import { makeReflector, makeRefiner, makeRubricVerifier, type ChatRequest, type VlmChat, type VlmRoleOptions } from '../../roles/vlm.js';
import { reportUsage, type Usage } from '../../core/usage.js';

export interface GeminiBackend {
  verifier: Verifier;
  reflector: Reflector;
  refiner: PromptRefiner;
  generator: Generator;
  corrector: Corrector;
}

export function createGeminiBackend(options: Record<string, unknown> = {}): GeminiBackend {
  refuseInlineSecrets('gemini', options);
  const r = new OptionReader('gemini', options);
  const baseUrl = r.string('baseUrl');
  const apiKey = readApiKey('gemini', r.string('apiKeyEnv'), 'GEMINI_API_KEY', baseUrl === undefined);
  const model = r.string('model', 'gemini-2.5-flash');
  const imageModel = r.string('imageModel', 'gemini-2.5-flash-image');
  const mode = r.oneOf('mode', ['rubric', 'yesno'] as const, 'rubric');
  if (mode === 'yesno') throw new UserError("gemini backend: mode 'yesno' needs token log-probabilities; use mode 'rubric', or the openai backend for yes/no");
  const metric = r.string('metric', OVERALL);
  const structuredOutput = r.bool('structuredOutput', true);
  const output = r.oneOf('output', ['text', 'json'] as const, 'json');
  const template = r.oneOf('template', ['default', 'reflection-generator'] as const, 'default');
  const maxTokens = r.int('maxTokens', 0, 0) || undefined;
  const temperature = r.number('temperature', undefined, 0, 2);
  const rel = readReliability(r, { timeoutMs: 120_000, concurrency: 4 });
  r.check();

  const http = new ReliableClient('gemini', rel);
  const ai = new GoogleGenAI({
    apiKey: apiKey ?? 'none',
    httpOptions: { ...(baseUrl ? { baseUrl } : {}), fetch: http.fetch, timeout: rel.timeoutMs + 1_000 },
  });

  const chat: VlmChat = {
    async complete(req, signal) {
      const config: GenerateContentConfig = {
        abortSignal: signal,
        ...(req.system ? { systemInstruction: req.system } : {}),
        ...(req.maxTokens ? { maxOutputTokens: req.maxTokens } : {}),
        ...(temperature !== undefined ? { temperature } : {}),
        ...(req.json ? { responseMimeType: 'application/json', responseJsonSchema: withoutAdditionalProperties(req.json.schema) } : {}),
      };
      const res = await ai.models.generateContent({ model, contents: toContents(req), config });
      reportUsage(usageOf(res));
      const text = textOf(res);
      if (!text) throw new ModelOutputError(`the answer has no text${blockReason(res)}`);
      return text;
    },
  };

  const roleOpts: VlmRoleOptions = {
    name: `gemini:${model}`,
    concurrency: http.concurrency,
    limitGroup: http.limitGroup,
    run: http.run.bind(http),
    metric,
    structuredOutput,
    output,
    template,
    ...(maxTokens ? { maxTokens } : {}),
  };

  const imageCall = async (parts: Part[], seed: number, signal: AbortSignal, what: string): Promise<Image> => {
    const res = await ai.models.generateContent({
      model: imageModel,
      contents: [{ role: 'user', parts }],
      config: { abortSignal: signal, responseModalities: ['TEXT', 'IMAGE'], seed },
    });
    reportUsage(usageOf(res));
    for (const part of res.candidates?.[0]?.content?.parts ?? []) {
      if (part.inlineData?.data && (part.inlineData.mimeType ?? 'image/').startsWith('image/')) return imageFromBase64(part.inlineData.data, what);
    }
    throw new ModelOutputError(`${what}: the answer holds no image${blockReason(res)}`);
  };

  const generator = imageGenerator(http, {
    name: `gemini:${imageModel}`,
    identity: `gemini:${baseUrl ?? 'generativelanguage.googleapis.com'}:${imageModel}`,
    make: (req, signal) => imageCall([{ text: req.prompt }], req.seed, signal, 'generate'),
  });

  const corrector = imageCorrector(http, {
    name: `gemini:${imageModel}`,
    make: (req, signal) =>
      imageCall(
        [{ inlineData: { mimeType: 'image/png', data: pngBase64(req.image) } }, { text: correctorInstruction(req.prompt, req.reflection) }],
        req.seed,
        signal,
        'correct',
      ),
  });

  return {
    verifier: makeRubricVerifier(chat, roleOpts),
    reflector: makeReflector(chat, roleOpts),
    refiner: makeRefiner(chat, roleOpts),
    generator,
    corrector,
  };
}

function toContents(req: ChatRequest): Content[] {
  const parts: Part[] = [];
  if (req.image) parts.push({ inlineData: { mimeType: 'image/png', data: pngBase64(req.image) } });
  parts.push({ text: req.text });
  const contents: Content[] = [{ role: 'user', parts }];
  if (req.repair) {
    if (req.repair.previous) contents.push({ role: 'model', parts: [{ text: req.repair.previous }] });
    contents.push({ role: 'user', parts: [{ text: req.repair.text }] });
  }
  return contents;
}

function textOf(res: GenerateContentResponse): string {
  const parts = res.candidates?.[0]?.content?.parts ?? [];
  return parts
    .filter((p) => typeof p.text === 'string' && !p.thought)
    .map((p) => p.text)
    .join('');
}

function blockReason(res: GenerateContentResponse): string {
  const block = res.promptFeedback?.blockReason;
  const finish = res.candidates?.[0]?.finishReason;
  if (block) return ` (blocked: ${block})`;
  if (finish && finish !== 'STOP') return ` (finish reason: ${finish})`;
  return '';
}

/** Gemini's JSON-schema subset: drop `additionalProperties` (our schemas are closed by `required` anyway). */
function withoutAdditionalProperties(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withoutAdditionalProperties);
  if (schema && typeof schema === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(schema)) if (k !== 'additionalProperties') out[k] = withoutAdditionalProperties(v);
    return out;
  }
  return schema;
}

export { geminiProvider } from './provider.js';

/** A thinking model's thoughts are billed as output: usageMetadata counts them (thoughtsTokenCount) apart from the answer. */
function usageOf(res: GenerateContentResponse): Usage {
  const u = res.usageMetadata;
  return { inputTokens: u?.promptTokenCount, outputTokens: (u?.candidatesTokenCount ?? 0) + (u?.thoughtsTokenCount ?? 0) };
}
