/**
 * `reflectionflow serve`: an OpenAI-compatible HTTP server over our own roles (node:http, no framework).
 *
 *   GET  /v1/models                 the served role models (reflectionflow-<role>)
 *   GET  /v1/models/{id}
 *   POST /v1/images/generations     generator
 *   POST /v1/images/edits           corrector (multipart/form-data)
 *   POST /v1/chat/completions       verifier (yes/no with logprobs, or rubric), reflector, refiner
 *
 * Every error is an OpenAI-style body `{error: {message, type, param, code}}`.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ModelOutputError, UserError, errorMessage } from '../core/errors.js';
import type { RoleSet } from '../core/roles.js';
import { handleChat } from './chat.js';
import type { HandlerContext } from './context.js';
import { ApiError, badRequest } from './errors.js';
import { handleEdit, handleGeneration } from './images.js';
import { RoleLimits, servedModels, type ServedModel } from './models.js';
import { multipartBoundary, parseMultipart } from './multipart.js';

export interface ServerOptions {
  roles: Partial<RoleSet>;
  /** default 127.0.0.1 */
  host?: string;
  /** default 8089; 0 picks a free port */
  port?: number;
  /** when set, every request needs `Authorization: Bearer <apiKey>` */
  apiKey?: string;
  /** request bodies above this are refused with 413 (default 32 MiB) */
  maxBodyBytes?: number;
  /** one line per request (method, path, status, ms) */
  log?: (line: string) => void;
}

export interface RunningServer {
  /** the OpenAI base URL: `http://host:port/v1` */
  url: string;
  host: string;
  port: number;
  models: ServedModel[];
  /** stop listening, abort calls in flight, close every connection */
  close(): Promise<void>;
}

export const DEFAULT_PORT = 8089;
export const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_MAX_BODY = 32 * 1024 * 1024;

type Route = { methods: Record<string, (ctx: HandlerContext, req: http.IncomingMessage) => Promise<unknown>> };

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const roles = options.roles;
  const models = servedModels(roles);
  if (!models.length) throw new UserError('nothing to serve: the backend has none of the five roles');
  const host = options.host ?? DEFAULT_HOST;
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const limits = new RoleLimits();
  const keyDigest = options.apiKey ? digest(options.apiKey) : undefined;
  const inFlight = new Set<AbortController>();
  const created = Math.floor(Date.now() / 1000);

  const modelObject = (m: ServedModel) => ({ id: m.id, object: 'model', created, owned_by: `reflectionflow:${m.backend}` });

  const readBody = async (req: http.IncomingMessage): Promise<Buffer> => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBody) throw tooLarge(maxBody);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBody) throw tooLarge(maxBody);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  };

  const readJson = async (req: http.IncomingMessage): Promise<unknown> => {
    const type = String(req.headers['content-type'] ?? '');
    if (!/^application\/json\s*(;|$)/i.test(type)) {
      throw badRequest(`Content-Type must be application/json, got '${type || 'none'}'`, null, 'unsupported_content_type');
    }
    const raw = await readBody(req);
    try {
      return JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw badRequest(`We could not parse the JSON body of your request: ${errorMessage(err)}`, null, 'invalid_json');
    }
  };

  const routes: Record<string, Route> = {
    '/v1/models': { methods: { GET: async () => ({ object: 'list', data: models.map(modelObject) }) } },
    '/v1/images/generations': { methods: { POST: async (ctx, req) => handleGeneration(ctx, await readJson(req)) } },
    '/v1/images/edits': {
      methods: {
        POST: async (ctx, req) => {
          const type = String(req.headers['content-type'] ?? '');
          const boundary = multipartBoundary(type);
          if (!boundary) {
            throw badRequest(`Content-Type must be multipart/form-data with a boundary, got '${type || 'none'}'`, null, 'unsupported_content_type');
          }
          return handleEdit(ctx, parseMultipart(await readBody(req), boundary));
        },
      },
    },
    '/v1/chat/completions': { methods: { POST: async (ctx, req) => handleChat(ctx, await readJson(req)) } },
  };

  const route = (pathname: string): Route | undefined => {
    const exact = routes[pathname];
    if (exact) return exact;
    const m = /^\/v1\/models\/([^/]+)$/.exec(pathname);
    if (!m) return undefined;
    return {
      methods: {
        GET: async () => {
          const id = decodeURIComponent(m[1]!);
          const model = models.find((x) => x.id === id);
          if (!model) throw new ApiError(404, `The model '${id}' does not exist`, 'model_not_found', 'model');
          return modelObject(model);
        },
      },
    };
  };

  const authorized = (req: http.IncomingMessage): boolean => {
    if (!keyDigest) return true;
    const m = /^Bearer\s+(.+)$/i.exec(String(req.headers.authorization ?? ''));
    return !!m && timingSafeEqual(digest(m[1]!.trim()), keyDigest);
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<unknown> => {
    if (!authorized(req)) {
      throw new ApiError(401, 'Incorrect or missing API key: send Authorization: Bearer <key>', 'invalid_api_key', null);
    }
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
    const r = route(pathname);
    const method = req.method ?? 'GET';
    if (!r) throw new ApiError(404, `Unknown request URL: ${method} ${pathname}`, 'unknown_url');
    const fn = r.methods[method];
    if (!fn) {
      res.setHeader('allow', Object.keys(r.methods).join(', '));
      throw new ApiError(405, `Method ${method} is not allowed on ${pathname} (allowed: ${Object.keys(r.methods).join(', ')})`, 'method_not_allowed');
    }
    const controller = new AbortController();
    inFlight.add(controller);
    const onClose = () => {
      if (!res.writableFinished) controller.abort(new Error('the client closed the connection'));
    };
    res.on('close', onClose);
    try {
      return await fn({ roles, limits, signal: controller.signal }, req);
    } finally {
      inFlight.delete(controller);
    }
  };

  const server = http.createServer((req, res) => {
    const started = Date.now();
    const send = (status: number, body: unknown) => {
      if (res.headersSent || res.destroyed) return;
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      options.log?.(`${req.method} ${req.url} ${status} ${Date.now() - started}ms`);
    };
    handle(req, res).then(
      (body) => send(200, body),
      (err: unknown) => {
        const api = toApiError(err);
        // an upload refused before it was read (401, 404, 413, …) is discarded; a too large one also ends the connection
        if (api.status === 413) res.setHeader('connection', 'close');
        req.resume();
        send(api.status, api.body());
      },
    );
  });
  server.requestTimeout = 0; // role calls can be slow; clients set their own deadlines
  server.headersTimeout = 60_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE') reject(new UserError(`cannot listen on ${host}:${options.port ?? DEFAULT_PORT}: the port is in use`));
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') reject(new UserError(`cannot listen on ${host}: no such local address`));
      else if (err.code === 'EACCES') reject(new UserError(`cannot listen on ${host}:${options.port ?? DEFAULT_PORT}: permission denied`));
      else reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(options.port ?? DEFAULT_PORT, host);
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}/v1`,
    host,
    port,
    models,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of inFlight) c.abort(new Error('the server is shutting down'));
        server.closeIdleConnections();
        // answers to aborted calls go out on their own; give them a moment, then cut what is left
        setTimeout(() => server.closeAllConnections(), 1_000).unref();
      });
      return closing;
    },
  };
}

function tooLarge(max: number): ApiError {
  return new ApiError(413, `The request body is larger than ${max} bytes`, 'request_too_large');
}

/** Any failure as an OpenAI-style error: ours keep their status; a role's UserError is the request's fault (400). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof UserError) return new ApiError(400, err.message, 'invalid_value');
  if (err instanceof ModelOutputError) return new ApiError(500, `the model's answer was unusable: ${err.message}`, 'model_output_error');
  return new ApiError(500, `internal error: ${errorMessage(err)}`, 'internal_error');
}
