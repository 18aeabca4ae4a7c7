/**
 * `reflectionflow serve`: an OpenAI-compatible HTTP server over our own roles, on Fastify.
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
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ModelOutputError, UserError, errorMessage } from '../core/errors.js';
import type { RoleSet } from '../core/roles.js';
import { handleChat } from './chat.js';
import type { HandlerContext } from './context.js';
import { ApiError, badRequest, quote } from './errors.js';
import { guardHostAndOrigin } from './guard.js';
import { handleEdit, handleGeneration, type FormParts } from './images.js';
import { servedModels, type ServedModel } from './models.js';
import { ModelQueues } from './queue.js';
import { DEFAULT_HOST, DEFAULT_MAX_PIXELS, DEFAULT_MAX_QUEUED, DEFAULT_PORT } from './defaults.js';

export { DEFAULT_HOST, DEFAULT_MAX_PIXELS, DEFAULT_MAX_QUEUED, DEFAULT_PORT };

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
  /** one line per request (method, path without its query string, status, ms) */
  log?: (line: string) => void;
  /**
   * host names that requests may name in `Host` besides the bound address (loopback names when it is loopback,
   * every local address when it is 0.0.0.0 or ::), e.g. the name a reverse proxy forwards
   */
  allowedHosts?: string[];
  /** most pixels (n × width × height) one images request may ask for (default 4096² = 16,777,216) */
  maxPixelsPerRequest?: number;
  /** most calls per model admitted at once, running or waiting; a request past it is 429 (default 64) */
  maxQueuedCalls?: number;
  /** a request's headers must arrive within this (default 15 s) */
  headersTimeoutMs?: number;
  /** a request's headers and body must arrive within this (default 60 s); the answer may take as long as the roles do */
  bodyTimeoutMs?: number;
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

const DEFAULT_MAX_BODY = 32 * 1024 * 1024;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
const MAX_PARTS = 64;
const DEFAULT_HEADERS_TIMEOUT = 15_000;
const DEFAULT_BODY_TIMEOUT = 60_000;

type Body = 'json' | 'multipart' | 'none';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** the body a route reads */
    body?: Body;
  }
}
type Handler = (ctx: HandlerContext, req: FastifyRequest) => Promise<unknown>;

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const roles = options.roles;
  const models = servedModels(roles);
  if (!models.length) throw new UserError('nothing to serve: the backend has none of the five roles');
  const host = options.host ?? DEFAULT_HOST;
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const queues = new ModelQueues(options.maxQueuedCalls ?? DEFAULT_MAX_QUEUED);
  const keyDigest = options.apiKey ? digest(options.apiKey) : undefined;
  const inFlight = new Set<AbortController>();
  const created = Math.floor(Date.now() / 1000);

  const modelObject = (m: ServedModel) => ({ id: m.id, object: 'model', created, owned_by: `reflectionflow:${m.backend}` });

  const headersTimeout = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT;
  const bodyTimeout = Math.max(headersTimeout, options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT);
  const maxPixels = options.maxPixelsPerRequest ?? DEFAULT_MAX_PIXELS;

  const app = Fastify({
    bodyLimit: maxBody,
    // node's requestTimeout bounds reading the request only: role calls after it can be slow
    serverFactory: (handler) =>
      http.createServer({ headersTimeout, requestTimeout: bodyTimeout, connectionsCheckingInterval: Math.min(1_000, headersTimeout) }, handler),
    routerOptions: { ignoreTrailingSlash: true },
    forceCloseConnections: 'idle',
    // a URL that does not decode (`/v1/models/%E0%A4%A`)
    frameworkErrors: (err, _req, reply) => sendError(reply, badRequest(`Invalid request URL: ${errorMessage(err)}`, null, 'invalid_url')),
  });

  const sendError = (reply: FastifyReply, err: unknown) => {
    const api = toApiError(err, reply.request);
    // a too large upload also ends the connection: the rest of it is not read
    if (api.status === 413) reply.header('connection', 'close');
    reply.headers(api.headers);
    return reply.code(api.status).type('application/json').send(api.body());
  };
  app.setErrorHandler((err, _req, reply) => sendError(reply, err));
  app.setNotFoundHandler((req, reply) => sendError(reply, new ApiError(404, `Unknown request URL: ${req.method} ${quote(pathOf(req.url), 200)}`, 'unknown_url')));

  guardHostAndOrigin(app, { host, allowedHosts: options.allowedHosts ?? [], allowFlag: 'serve --allowed-host' });
  app.addHook('onRequest', async (req) => {
    if (!keyDigest) return;
    const m = /^Bearer\s+(.+)$/i.exec(String(req.headers.authorization ?? ''));
    if (!m || !timingSafeEqual(digest(m[1]!.trim()), keyDigest)) {
      throw new ApiError(401, 'Incorrect or missing API key: send Authorization: Bearer <key>', 'invalid_api_key', null);
    }
  });
  if (options.log) {
    const log = options.log;
    app.addHook('onResponse', async (req, reply) => {
      log(`${req.method} ${pathOf(req.url).replace(/[\u0000-\u001f\u007f]/g, '?').slice(0, 200)} ${reply.statusCode} ${Math.round(reply.elapsedTime)}ms`);
    });
  }

  const context = (signal: AbortSignal): HandlerContext => ({ roles, maxPixels, signal, calls: (role, count, make) => queues.calls(role, count, signal, make) });
  const path = (scope: FastifyInstance, url: string, body: Body, handlers: Partial<Record<'GET' | 'POST', Handler>>) =>
    addPath(scope, url, body, handlers, { inFlight, context });

  path(app, '/v1/models', 'none', { GET: async () => ({ object: 'list', data: models.map(modelObject) }) });
  path(app, '/v1/models/:id', 'none', {
    GET: async (_ctx, req) => {
      const id = (req.params as { id: string }).id;
      const model = models.find((x) => x.id === id);
      if (!model) throw new ApiError(404, `The model ${quote(id)} does not exist`, 'model_not_found', 'model');
      return modelObject(model);
    },
  });

  // each body kind in its own scope, with only its content-type parser: anything else is Fastify's 415, a 400 here
  await app.register(async (json) => {
    json.removeContentTypeParser('text/plain');
    path(json, '/v1/images/generations', 'json', { POST: async (ctx, req) => handleGeneration(ctx, req.body) });
    path(json, '/v1/chat/completions', 'json', { POST: async (ctx, req) => handleChat(ctx, req.body) });
  });
  await app.register(async (form) => {
    form.removeAllContentTypeParsers();
    await form.register(multipart, { limits: { fileSize: maxBody, fieldSize: maxBody, parts: MAX_PARTS } });
    path(form, '/v1/images/edits', 'multipart', { POST: async (ctx, req) => handleEdit(ctx, await readForm(req, maxBody)) });
  });

  const port = await listen(app, host, options.port ?? DEFAULT_PORT);
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}/v1`,
    host,
    port,
    models,
    close() {
      closing ??= (async () => {
        for (const c of inFlight) c.abort(new Error('the server is shutting down'));
        // answers to aborted calls go out on their own; give them a moment, then cut what is left
        const cut = setTimeout(() => app.server.closeAllConnections(), 1_000);
        cut.unref();
        await app.close();
        clearTimeout(cut);
      })();
      return closing;
    },
  };
}

/**
 * A path's routes: its methods' handlers, each given a context whose signal fires when the client goes away, and
 * 405 for every other method.
 */
function addPath(
  scope: FastifyInstance,
  url: string,
  body: Body,
  handlers: Partial<Record<'GET' | 'POST', Handler>>,
  server: { inFlight: Set<AbortController>; context: (signal: AbortSignal) => HandlerContext },
): void {
  const allowed = Object.keys(handlers);
  const allow = allowed.join(', ');
  for (const [method, fn] of Object.entries(handlers)) {
    scope.route({
      method,
      url,
      config: { body },
      handler: async (req, reply) => {
        const controller = new AbortController();
        server.inFlight.add(controller);
        reply.raw.on('close', () => {
          if (!reply.raw.writableFinished) controller.abort(new Error('the client closed the connection'));
        });
        try {
          return await fn(server.context(controller.signal), req);
        } finally {
          server.inFlight.delete(controller);
        }
      },
    });
  }
  const others = METHODS.filter((m) => !allowed.includes(m) && !(m === 'HEAD' && allowed.includes('GET')));
  scope.route({
    method: [...others],
    url,
    handler: async (req) => {
      throw new ApiError(405, `Method ${req.method} is not allowed on ${pathOf(req.url)} (allowed: ${allow})`, 'method_not_allowed', null, undefined, { allow });
    },
  });
}

/** Listen on host:port; the port actually bound. A port in use or an address that is not local is the user's error. */
async function listen(app: FastifyInstance, host: string, port: number): Promise<number> {
  try {
    await app.listen({ port, host });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UserError(`cannot listen on ${host}:${port}: the port is in use`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new UserError(`cannot listen on ${host}: no such local address`);
    if (code === 'EACCES') throw new UserError(`cannot listen on ${host}:${port}: permission denied`);
    throw err;
  }
  return (app.server.address() as AddressInfo).port;
}

/** The path of a request URL, without its query string. */
function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** A multipart body's fields and files (the first of each name), at most `maxBytes` in all. */
async function readForm(req: FastifyRequest, maxBytes: number): Promise<FormParts> {
  if (!req.isMultipart()) throw unsupportedType(req);
  const form: FormParts = { fields: new Map(), files: new Map() };
  let total = 0;
  try {
    for await (const part of req.parts()) {
      if (part.type === 'file') {
        const data = await part.toBuffer();
        total += data.length;
        if (!form.files.has(part.fieldname)) form.files.set(part.fieldname, { filename: part.filename, contentType: part.mimetype, data });
      } else {
        const value = String(part.value);
        total += Buffer.byteLength(value);
        if (!form.fields.has(part.fieldname)) form.fields.set(part.fieldname, value);
      }
      if (total > maxBytes) throw tooLarge(maxBytes);
    }
  } catch (err) {
    if (err instanceof ApiError || (err as { statusCode?: number }).statusCode === 413) throw err;
    throw badRequest(`malformed multipart/form-data body: ${errorMessage(err)}`, null, 'invalid_multipart');
  }
  return form;
}

function unsupportedType(req: FastifyRequest): ApiError {
  const want = req.routeOptions.config.body === 'multipart' ? 'multipart/form-data with a boundary' : 'application/json';
  const type = String(req.headers['content-type'] ?? '');
  return badRequest(`Content-Type must be ${want}, got ${type ? quote(type) : 'none'}`, null, 'unsupported_content_type');
}

function tooLarge(max: number): ApiError {
  return new ApiError(413, `The request body is larger than ${max} bytes`, 'request_too_large');
}

const FASTIFY_TOO_LARGE = new Set(['FST_ERR_CTP_BODY_TOO_LARGE', 'FST_REQ_FILE_TOO_LARGE', 'FST_PARTS_LIMIT', 'FST_FILES_LIMIT', 'FST_FIELDS_LIMIT']);
const FASTIFY_BAD_JSON = new Set(['FST_ERR_CTP_INVALID_JSON_BODY', 'FST_ERR_CTP_EMPTY_JSON_BODY']);

/**
 * Any failure as an OpenAI-style error: ours keep their status; a role's UserError is the request's fault (400);
 * Fastify's own request errors (body too large, wrong content type, bad JSON) keep their meaning.
 */
export function toApiError(err: unknown, req?: FastifyRequest): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof UserError) return new ApiError(400, err.message, 'invalid_value');
  if (err instanceof ModelOutputError) return new ApiError(500, `the model's answer was unusable: ${err.message}`, 'model_output_error');
  const fst = err as { code?: string; statusCode?: number };
  if (fst.code && FASTIFY_TOO_LARGE.has(fst.code)) return new ApiError(413, `The request body is too large: ${errorMessage(err)}`, 'request_too_large');
  if (fst.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || fst.code === 'FST_INVALID_MULTIPART_CONTENT_TYPE') {
    return req ? unsupportedType(req) : badRequest(errorMessage(err), null, 'unsupported_content_type');
  }
  if ((fst.code && FASTIFY_BAD_JSON.has(fst.code)) || (err instanceof SyntaxError && fst.statusCode === 400)) {
    return badRequest(`We could not parse the JSON body of your request: ${errorMessage(err)}`, null, 'invalid_json');
  }
  if (fst.statusCode && fst.statusCode >= 400 && fst.statusCode < 500) return new ApiError(fst.statusCode, errorMessage(err), 'invalid_request');
  return new ApiError(500, `internal error: ${errorMessage(err)}`, 'internal_error');
}
