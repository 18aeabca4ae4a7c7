import sharp from 'sharp';
import type { Image } from '../../core/types.js';
import { ModelOutputError } from '../../core/errors.js';
import type { CallOptions, CorrectRequest, Corrector, GenerateRequest, Generator, RoleInfo } from '../../core/roles.js';
import { ensureOk, type ReliableClient } from './reliability.js';

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];

function isPng(bytes: Uint8Array): boolean {
  return PNG_MAGIC.every((b, i) => bytes[i] === b);
}

/** Any image bytes sharp reads (PNG, JPEG, WebP, …) as a PNG Image. */
export async function toPngImage(bytes: Uint8Array, what = 'image'): Promise<Image> {
  if (isPng(bytes)) return { png: bytes };
  try {
    const png = await sharp(bytes).png().toBuffer();
    return { png: new Uint8Array(png.buffer, png.byteOffset, png.byteLength) };
  } catch {
    throw new ModelOutputError(`${what}: the service returned ${bytes.byteLength} bytes that are not a readable image`);
  }
}

/** The image as a `data:image/png;base64,…` URL (how chat APIs and fal take inline images). */
export function pngDataUrl(image: Image): string {
  return `data:image/png;base64,${Buffer.from(image.png).toString('base64')}`;
}

export function pngBase64(image: Image): string {
  return Buffer.from(image.png).toString('base64');
}

/** Decode base64 image bytes (as Images APIs return them) to a PNG Image. */
export async function imageFromBase64(b64: string, what: string): Promise<Image> {
  return toPngImage(new Uint8Array(Buffer.from(b64, 'base64')), what);
}

/**
 * Fetch an image a service answered with: a `data:` URL is decoded, an http(s) URL is downloaded (with the backend's
 * retrying fetch and the call's signal); either way the result is converted to PNG.
 */
export async function imageFromUrl(url: string, fetchFn: typeof fetch, signal: AbortSignal, what: string): Promise<Image> {
  const data = /^data:([^;,]*)(;base64)?,(.*)$/s.exec(url);
  if (data) {
    const bytes = data[2] ? Buffer.from(data[3]!, 'base64') : Buffer.from(decodeURIComponent(data[3]!), 'latin1');
    return toPngImage(new Uint8Array(bytes), what);
  }
  if (!/^https?:\/\//i.test(url)) throw new ModelOutputError(`${what}: the service answered an image URL we cannot fetch`);
  const res = await ensureOk(await fetchFn(url, { signal }), `${what}: downloading the image`);
  return toPngImage(new Uint8Array(await res.arrayBuffer()), what);
}

/**
 * The image-role port: a remote image backend says how to make one image on its service (`make`, given the call's
 * deadline signal) and gets a generator or corrector that runs through its reliability layer (slot, deadline,
 * retries, error scrubbing) and shares its concurrency limit — the `VlmChat` of image roles.
 */
export interface ImageCallSpec<Req> {
  /** backend name as written in events and run.json, e.g. `fal:fal-ai/flux/dev` */
  name: string;
  /** what a cached image depends on, for generators (eval's pool cache) */
  identity?: string;
  make(req: Req, signal: AbortSignal): Promise<Image>;
}

/** The backend's name, and the concurrency limit every role of its client shares. */
function imageRoleInfo(http: ReliableClient, name: string): RoleInfo {
  return { name, concurrency: http.concurrency, limitGroup: http.limitGroup };
}

export function imageGenerator(http: ReliableClient, spec: ImageCallSpec<GenerateRequest>): Generator {
  const generate = (req: GenerateRequest, opts?: CallOptions) => http.run('generate', (signal) => spec.make(req, signal), opts?.signal);
  return { ...imageRoleInfo(http, spec.name), ...(spec.identity ? { identity: spec.identity } : {}), generate };
}

export function imageCorrector(http: ReliableClient, spec: ImageCallSpec<CorrectRequest>): Corrector {
  const correct = (req: CorrectRequest, opts?: CallOptions) => http.run('correct', (signal) => spec.make(req, signal), opts?.signal);
  return { ...imageRoleInfo(http, spec.name), correct };
}
