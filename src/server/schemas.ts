/** zod schemas of the requests the server takes (OpenAI wire format; fields we do not use pass through). */
import { z } from 'zod';
import { ApiError } from './errors.js';

export const MAX_SEED = 2 ** 31 - 1;
/** OpenAI's own limit for image prompts (the gpt-image models); no ShapeWorld prompt comes near it */
export const MAX_PROMPT = 32_000;
const prompt = z
  .string()
  .max(MAX_PROMPT)
  .refine((s) => s.trim().length > 0, 'the prompt is empty');

const textPart = z.object({ type: z.literal('text'), text: z.string() }).passthrough();
const imagePart = z
  .object({ type: z.literal('image_url'), image_url: z.object({ url: z.string().min(1), detail: z.string().optional() }).passthrough() })
  .passthrough();
export const contentPart = z.discriminatedUnion('type', [textPart, imagePart]);

const message = z
  .object({
    role: z.enum(['system', 'developer', 'user', 'assistant']),
    content: z.union([z.string(), z.array(contentPart)]).nullable().optional(),
  })
  .passthrough();

const responseFormat = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }).passthrough(),
  z.object({ type: z.literal('json_object') }).passthrough(),
  z
    .object({
      type: z.literal('json_schema'),
      json_schema: z
        .object({ name: z.string().min(1), schema: z.record(z.string(), z.unknown()).optional(), strict: z.boolean().nullable().optional() })
        .passthrough(),
    })
    .passthrough(),
]);

export const chatRequestSchema = z
  .object({
    model: z.string().min(1),
    messages: z.array(message).min(1),
    stream: z.boolean().nullable().optional(),
    n: z.number().int().min(1).nullable().optional(),
    logprobs: z.boolean().nullable().optional(),
    top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
    max_tokens: z.number().int().min(1).nullable().optional(),
    max_completion_tokens: z.number().int().min(1).nullable().optional(),
    temperature: z.number().min(0).max(2).nullable().optional(),
    response_format: responseFormat.optional(),
  })
  .passthrough();
export type ChatRequestBody = z.infer<typeof chatRequestSchema>;

const imageCommon = {
  model: z.string().min(1).optional(),
  prompt,
  response_format: z.enum(['b64_json', 'url']).nullable().optional(),
  size: z.string().nullable().optional(),
  output_format: z.string().nullable().optional(),
  stream: z.boolean().nullable().optional(),
};

export const generationRequestSchema = z
  .object({
    ...imageCommon,
    n: z.number().int().min(1).max(10).nullable().optional(),
    seed: z.number().int().min(0).max(MAX_SEED).nullable().optional(),
  })
  .passthrough();
export type GenerationRequestBody = z.infer<typeof generationRequestSchema>;

/** A multipart field that must be a whole number in [min, max]. */
const intField = (min: number, max: number) =>
  z
    .string()
    .regex(/^\s*\d+\s*$/, 'expected a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const boolField = z.enum(['true', 'false']).transform((s) => s === 'true');

/** images/edits fields as multipart text (numbers arrive as strings). */
export const editFieldsSchema = z
  .object({
    model: z.string().min(1).optional(),
    prompt,
    response_format: z.enum(['b64_json', 'url']).optional(),
    size: z.string().optional(),
    output_format: z.string().optional(),
    stream: boolField.optional(),
    n: intField(1, 10).optional(),
    seed: intField(0, MAX_SEED).optional(),
  })
  .passthrough();
export type EditFields = z.infer<typeof editFieldsSchema>;

/** The first problem zod found, as an OpenAI-style 400. */
export function zodError(err: z.ZodError): ApiError {
  const issue = err.issues[0]!;
  const param = issue.path.map(String).join('.') || null;
  const missing = issue.code === 'invalid_type' && /received undefined/.test(issue.message);
  if (missing) return new ApiError(400, `Missing required parameter: '${param}'.`, 'missing_required_parameter', param);
  return new ApiError(400, `Invalid ${param ? `'${param}'` : 'request body'}: ${issue.message}`, 'invalid_value', param);
}

export function validate<T extends z.ZodTypeAny>(schema: T, body: unknown): z.infer<T> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw zodError(parsed.error);
  return parsed.data;
}
