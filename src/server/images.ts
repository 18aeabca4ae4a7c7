/** images/generations → generator; images/edits → corrector (prompt `refined prompt [Reflexion]: reflection`). */
import { randomInt } from 'node:crypto';
import sharp from 'sharp';
import type { Image, Reflection } from '../core/types.js';
import type { RoleInfo } from '../core/roles.js';
import { UserError } from '../core/errors.js';
import { ApiError, badRequest, quote } from './errors.js';
import { roleForModel } from './models.js';
import { editFieldsSchema, generationRequestSchema, MAX_SEED, validate } from './schemas.js';
import type { HandlerContext } from './context.js';

/** A multipart form as the edits endpoint reads it: text fields, and files by field name (the first of a name wins). */
export interface FormParts {
  fields: Map<string, string>;
  files: Map<string, { filename: string; contentType: string; data: Buffer }>;
}

/** The marker `correctorInstruction` puts between the prompt and the reflection. */
export const REFLEXION_MARKER = ' [Reflexion]: ';

/**
 * Split a corrector instruction back into the round's prompt and the reflection, one item per line. Line breaks
 * become `\n` (multipart encoders send field values with CRLF). Undefined when the marker is missing.
 */
export function splitCorrectorInstruction(text: string): { prompt: string; reflection: Reflection } | undefined {
  const normal = text.replace(/\r\n?/g, '\n');
  const at = normal.indexOf(REFLEXION_MARKER);
  if (at < 0) return undefined;
  const prompt = normal.slice(0, at);
  const reflectionText = normal.slice(at + REFLEXION_MARKER.length);
  const items = reflectionText
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return { prompt, reflection: { text: reflectionText, items } };
}

function checkCommon(body: { response_format?: string | null; stream?: boolean | null; output_format?: string | null }): void {
  if (body.response_format === 'url') {
    throw badRequest("response_format 'url' is not supported: this server keeps no files; use 'b64_json'", 'response_format', 'unsupported_value');
  }
  if (body.stream) throw badRequest('stream is not supported', 'stream', 'unsupported_value');
  if (body.output_format && body.output_format !== 'png') {
    throw badRequest(`output_format ${quote(body.output_format)} is not supported: images are PNG`, 'output_format', 'unsupported_value');
  }
}

/** `auto` or none → undefined (the role's own size); `NxN` → N; anything else is a 400. */
export function parseSize(size: string | null | undefined): number | undefined {
  if (size === undefined || size === null || size === 'auto') return undefined;
  const m = /^(\d{1,4})x(\d{1,4})$/.exec(size);
  if (!m) throw badRequest(`Invalid 'size': expected 'auto' or '<width>x<height>', got ${quote(size)}`, 'size', 'invalid_value');
  if (m[1] !== m[2]) throw badRequest(`Invalid 'size': images are square, got ${quote(size)}`, 'size', 'invalid_value');
  const n = Number(m[1]);
  if (n < 1) throw badRequest(`Invalid 'size': ${quote(size)}`, 'size', 'invalid_value');
  return n;
}

/** Seeds of an n-image request: seed, seed+1, …; a request without a seed gets a random one. */
function seedsFor(seed: number | null | undefined, n: number): number[] {
  const first = seed ?? randomInt(0, MAX_SEED - 16);
  if (first + n - 1 > MAX_SEED) throw badRequest(`Invalid 'seed': seed + n − 1 must be at most ${MAX_SEED}`, 'seed', 'invalid_value');
  return Array.from({ length: n }, (_, i) => first + i);
}

/** One image per seed, made concurrently (admitted together, each call under the role's limits), in the Images API's response shape. */
async function imagesPerSeed(ctx: HandlerContext, role: RoleInfo, seeds: number[], make: (seed: number) => Promise<Image>) {
  const images = await ctx.calls(role, seeds.length, (i) => make(seeds[i]!));
  return {
    created: Math.floor(Date.now() / 1000),
    data: images.map((image, i) => ({ b64_json: Buffer.from(image.png).toString('base64'), seed: seeds[i]! })),
  };
}

/**
 * The size of an n-image request: one the role can never make is the client's error (400), not a failed call
 * (500), and so is one over the pixel budget (n × size²; a request without a size gets the role's own).
 */
function sizeFor(ctx: HandlerContext, role: RoleInfo, size: number | undefined, n: number): number | undefined {
  if (size === undefined) return undefined;
  try {
    role.checkSize?.(size);
  } catch (err) {
    if (err instanceof UserError) throw badRequest(`Invalid 'size': ${err.message}`, 'size', 'invalid_value');
    throw err;
  }
  if (n * size * size > ctx.maxPixels) {
    throw badRequest(
      `n × width × height = ${n} × ${size} × ${size} = ${n * size * size} pixels is over this server's budget of ${ctx.maxPixels} per request (serve --max-pixels)`,
      'size',
      'pixel_budget_exceeded',
    );
  }
  return size;
}

export async function handleGeneration(ctx: HandlerContext, raw: unknown) {
  const body = validate(generationRequestSchema, raw);
  checkCommon(body);
  roleForModel(ctx.roles, body.model ?? 'reflectionflow-generator', 'images/generations', ['generator']);
  const generator = ctx.roles.generator!;
  const n = body.n ?? 1;
  const size = sizeFor(ctx, generator, parseSize(body.size), n);
  return imagesPerSeed(ctx, generator, seedsFor(body.seed, n), (seed) =>
    generator.generate({ prompt: body.prompt, seed, ...(size !== undefined ? { size } : {}) }, { signal: ctx.signal }),
  );
}

/** Decode an uploaded or inline image to PNG; anything sharp cannot read is a 400. */
export async function readImage(bytes: Uint8Array, param: string): Promise<Image> {
  try {
    const meta = await sharp(bytes).metadata();
    if (meta.format === 'png') return { png: bytes };
    const png = await sharp(bytes).png().toBuffer();
    return { png: new Uint8Array(png.buffer, png.byteOffset, png.byteLength) };
  } catch {
    throw badRequest(`Invalid '${param}': ${bytes.byteLength} bytes that are not a readable image`, param, 'invalid_image');
  }
}

export async function handleEdit(ctx: HandlerContext, form: FormParts) {
  if (form.files.has('mask')) throw badRequest('mask is not supported: the corrector edits the whole image', 'mask', 'unsupported_value');
  const fields = validate(editFieldsSchema, Object.fromEntries(form.fields));
  checkCommon(fields);
  roleForModel(ctx.roles, fields.model ?? 'reflectionflow-corrector', 'images/edits', ['corrector']);
  const corrector = ctx.roles.corrector!;
  const file = form.files.get('image') ?? form.files.get('image[]');
  if (!file) {
    if (form.fields.has('image')) throw badRequest("Invalid 'image': expected a file part", 'image', 'invalid_value');
    throw new ApiError(400, "Missing required parameter: 'image'.", 'missing_required_parameter', 'image');
  }
  const image = await readImage(new Uint8Array(file.data.buffer, file.data.byteOffset, file.data.byteLength), 'image');
  const split = splitCorrectorInstruction(fields.prompt);
  if (!split) {
    throw badRequest(
      "Invalid 'prompt': the corrector takes 'refined prompt [Reflexion]: reflection' (one instruction per line after the marker)",
      'prompt',
      'invalid_value',
    );
  }
  const n = fields.n ?? 1;
  const size = sizeFor(ctx, corrector, parseSize(fields.size), n);
  return imagesPerSeed(ctx, corrector, seedsFor(fields.seed, n), (seed) =>
    corrector.correct({ image, prompt: split.prompt, reflection: split.reflection, seed, ...(size !== undefined ? { size } : {}) }, { signal: ctx.signal }),
  );
}
