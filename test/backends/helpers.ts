import http from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';

export interface Recorded {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  at: number;
}

export type Handler = (req: Recorded, res: http.ServerResponse, n: number) => unknown;

export interface TestServer {
  url: string;
  requests: Recorded[];
  close(): Promise<void>;
}

/** A local HTTP server on 127.0.0.1 and a random port; records every request (body included). */
export async function startServer(handler: Handler): Promise<TestServer> {
  const requests: Recorded[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec: Recorded = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks), at: Date.now() };
      requests.push(rec);
      Promise.resolve(handler(rec, res, requests.length - 1)).catch((err: unknown) => {
        res.statusCode = 599;
        res.end(String(err));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

export function jsonBody(req: Recorded): any {
  return JSON.parse(req.body.toString('utf8'));
}

/** Parse a multipart/form-data request body with the platform's own parser. */
export async function formData(req: Recorded): Promise<FormData> {
  return new Response(new Uint8Array(req.body), { headers: { 'content-type': String(req.headers['content-type']) } }).formData();
}

let png: Buffer | undefined;
let jpeg: Buffer | undefined;

export async function tinyPng(): Promise<Buffer> {
  png ??= await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 200, g: 30, b: 30 } } }).png().toBuffer();
  return png;
}

export async function tinyJpeg(): Promise<Buffer> {
  jpeg ??= await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 30, g: 30, b: 200 } } }).jpeg().toBuffer();
  return jpeg;
}

export function isPng(bytes: Uint8Array): boolean {
  return bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
}

/** A recognisable fake key: tests assert it never leaves the process except in the auth header. */
export const FAKE_KEY = 'sk-test-FAKEKEY-0123456789abcdef';

/** A ComfyUI that finishes each prompt after `pollsBeforeDone` history polls. */
export function comfyHandler(pollsBeforeDone = 1): Handler {
  let polls = 0;
  return async (req, res) => {
    if (req.method === 'POST' && req.path === '/prompt') return json(res, 200, { prompt_id: 'p-1', number: 0, node_errors: {} });
    if (req.method === 'POST' && req.path === '/upload/image') return json(res, 200, { name: 'up.png', subfolder: '', type: 'input' });
    if (req.path === '/history/p-1') {
      if (polls++ < pollsBeforeDone) return json(res, 200, {});
      return json(res, 200, {
        'p-1': { status: { status_str: 'success', completed: true, messages: [] }, outputs: { '10': { images: [{ filename: 'rf_0001.png', subfolder: '', type: 'output' }] } } },
      });
    }
    if (req.path.startsWith('/view?')) {
      res.writeHead(200, { 'content-type': 'image/png' });
      return res.end(await tinyPng());
    }
    json(res, 404, {});
  };
}

