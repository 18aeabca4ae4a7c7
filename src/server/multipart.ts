/**
 * multipart/form-data (RFC 7578) for the whole body at once: the server reads bodies into memory under a size cap
 * anyway, so a buffer parser is enough. Fields are UTF-8 text; parts with a filename are files.
 */
import { badRequest } from './errors.js';

export interface FilePart {
  filename: string;
  contentType: string;
  data: Buffer;
}

export interface FormParts {
  fields: Map<string, string>;
  files: Map<string, FilePart>;
}

const MAX_PARTS = 64;

/** The boundary of a `multipart/form-data; boundary=…` content type, or undefined. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (!contentType || !/^multipart\/form-data\s*(;|$)/i.test(contentType)) return undefined;
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^";\s]{1,70}))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : undefined;
}

/** Parameters of a header value such as `form-data; name="image"; filename="a.png"`. */
function headerParams(value: string): Map<string, string> {
  const params = new Map<string, string>();
  const re = /;\s*([A-Za-z0-9_*.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(value))) {
    const raw = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!.trim();
    params.set(m[1]!.toLowerCase(), raw);
  }
  return params;
}

/**
 * Parse a whole multipart body. Throws a 400 ApiError on anything malformed: no opening delimiter, a part without
 * a name, headers or a closing delimiter missing. When a name repeats, the first part wins (a second `image` or
 * `image[]` is not used by any endpoint that takes one image).
 */
export function parseMultipart(body: Buffer, boundary: string): FormParts {
  const delimiter = Buffer.from(`--${boundary}`);
  const fields = new Map<string, string>();
  const files = new Map<string, FilePart>();
  const malformed = (why: string) => badRequest(`malformed multipart/form-data body: ${why}`, null, 'invalid_multipart');

  let pos: number;
  if (body.subarray(0, delimiter.length).equals(delimiter)) pos = delimiter.length;
  else {
    const first = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]));
    if (first < 0) throw malformed('no opening boundary');
    pos = first + 2 + delimiter.length;
  }
  const next = Buffer.concat([Buffer.from('\r\n'), delimiter]);
  for (let count = 0; ; count++) {
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return { fields, files }; // closing `--boundary--`
    // transport padding, then CRLF
    while (body[pos] === 0x20 || body[pos] === 0x09) pos++;
    if (body[pos] !== 0x0d || body[pos + 1] !== 0x0a) throw malformed('a boundary is not followed by CRLF');
    pos += 2;
    if (count >= MAX_PARTS) throw malformed(`more than ${MAX_PARTS} parts`);
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    if (headerEnd < 0) throw malformed('a part has no end of headers');
    const headers = new Map<string, string>();
    for (const line of body.subarray(pos, headerEnd).toString('utf8').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw malformed(`bad header line ${JSON.stringify(line.slice(0, 60))}`);
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const dataStart = headerEnd + 4;
    const dataEnd = body.indexOf(next, dataStart);
    if (dataEnd < 0) throw malformed('no closing boundary');
    const disposition = headers.get('content-disposition') ?? '';
    if (!/^form-data\s*(;|$)/i.test(disposition)) throw malformed('a part is not form-data');
    const params = headerParams(disposition);
    const name = params.get('name');
    if (!name) throw malformed('a part has no name');
    const data = body.subarray(dataStart, dataEnd);
    const filename = params.get('filename') ?? decodeExtValue(params.get('filename*'));
    if (filename !== undefined) {
      if (!files.has(name)) files.set(name, { filename, contentType: headers.get('content-type') ?? 'application/octet-stream', data });
    } else if (!fields.has(name)) {
      fields.set(name, data.toString('utf8'));
    }
    pos = dataEnd + next.length;
  }
}

/** RFC 5987 `UTF-8''name%20x.png` → `name x.png`. */
function decodeExtValue(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const m = /^[^']*'[^']*'(.*)$/.exec(v);
  try {
    return decodeURIComponent(m ? m[1]! : v);
  } catch {
    return v;
  }
}
