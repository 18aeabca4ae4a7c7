/**
 * `reflectionflow ui`: a local web view of a runs folder, on Fastify like `serve` and behind the same Host and Origin
 * checks. The page (assets/ui/: plain HTML, CSS and JS, nothing fetched from elsewhere) reads:
 *
 *   GET  /api/options                 backends, config files and strategies the form offers
 *   GET  /api/runs?offset&limit       run summaries from run.json, newest first, a page at a time
 *   POST /api/runs                    start a run {prompt, strategy, samples, width, depth, seed, backend | config}
 *   GET  /api/runs/:id                one run's summary
 *   GET  /api/runs/:id/events         server-sent events: `run` (run.json), `calls` (events.jsonl lines), `end`
 *   GET  /api/runs/:id/images/:image  an image of the run (PNG)
 *   POST /api/runs/:id/cancel         stop a run started here (it stays resumable)
 *   POST /api/runs/:id/resume         resume an interrupted or incomplete run here
 *   GET  /api/evals, /api/evals/:name, /api/evals/:name/scaling.svg   eval results folders
 */
import { createReadStream, promises as fs } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyReply } from 'fastify';
import { UserError } from '../core/errors.js';
import { REPORT_CSS } from '../report/style.js';
import { ApiError, quote } from '../server/errors.js';
import { guardHostAndOrigin } from '../server/guard.js';
import { toApiError } from '../server/server.js';
import { makeOutputDir } from '../store/dirs.js';
import { DEFAULT_UI_PORT } from './defaults.js';
import { Launcher } from './launch.js';
import { evalDir, followRun, listEvals, RunFolder, type Follower, type FollowHandlers } from './runs.js';

export { DEFAULT_UI_PORT };

const HOST = '127.0.0.1';
const ASSETS = fileURLToPath(new URL('../../assets/ui/', import.meta.url));
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui.js': { file: 'ui.js', type: 'text/javascript; charset=utf-8' },
  '/ui.css': { file: 'ui.css', type: 'text/css; charset=utf-8' },
};
// nothing but this server: no CDN, no inline script, no frames
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const MAX_PAGE = 200;

export interface UiOptions {
  /** the runs folder (created when missing) */
  runs: string;
  /** eval results folders (`eval-…/results.json`) shown in the view */
  evals?: string;
  /** config files (*.json, *.yaml) the new-run form offers */
  configs?: string;
  /** default 8090; 0 picks a free port */
  port?: number;
  /** one line per run started, cancelled or ended */
  log?: (line: string) => void;
  /** how often a followed run's files are read (default 150 ms) */
  pollMs?: number;
}

export interface RunningUi {
  url: string;
  port: number;
  launcher: Launcher;
  /** cancel the runs started here (they stay resumable), end the event streams, stop listening */
  close(): Promise<void>;
}

export async function startUi(options: UiOptions): Promise<RunningUi> {
  makeOutputDir(options.runs, 'runs folder');
  const folder = new RunFolder(path.resolve(options.runs));
  const evals = path.resolve(options.evals ?? 'evals');
  const launcher = new Launcher({ folder, ...(options.configs ? { configsDir: path.resolve(options.configs) } : {}), ...(options.log ? { log: options.log } : {}) });
  const streams = new Set<() => void>();

  const app = Fastify({ routerOptions: { ignoreTrailingSlash: true }, forceCloseConnections: true });
  const sendError = (reply: FastifyReply, err: unknown) => {
    const api = toApiError(err, reply.request);
    return reply.code(api.status).headers(api.headers).type('application/json').send(api.body());
  };
  app.setErrorHandler((err, _req, reply) => sendError(reply, err));
  app.setNotFoundHandler((req, reply) => sendError(reply, new ApiError(404, `Unknown request URL: ${req.method} ${quote(req.url.split('?')[0]!, 200)}`, 'unknown_url')));
  guardHostAndOrigin(app, { host: HOST, allowedHosts: [] });
  app.addHook('onSend', async (_req, reply) => {
    reply.header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
  });

  for (const [url, { file, type }] of Object.entries(STATIC)) {
    app.get(url, async (_req, reply) => reply.type(type).header('cache-control', 'no-cache').send(await fs.readFile(path.join(ASSETS, file))));
  }
  // the report's stylesheet: the run view draws its cards, scores and badges as report.html does
  app.get('/report.css', async (_req, reply) => reply.type('text/css; charset=utf-8').header('cache-control', 'no-cache').send(REPORT_CSS));

  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());
  app.get('/api/options', async () => ({ ...launcher.choices(), runs: folder.dir }));
  app.get('/api/runs', async (req) => {
    const q = req.query as Record<string, string | undefined>;
    return folder.list(count(q.offset, 0, 'offset'), Math.min(MAX_PAGE, count(q.limit, 50, 'limit')));
  });
  app.post('/api/runs', async (req) => ({ id: await launcher.start(req.body) }));
  app.get('/api/runs/:id', async (req) => folder.summary((req.params as { id: string }).id));
  app.post('/api/runs/:id/cancel', async (req) => {
    const id = (req.params as { id: string }).id;
    await launcher.cancel(id);
    return folder.summary(id);
  });
  app.post('/api/runs/:id/resume', async (req) => {
    const id = (req.params as { id: string }).id;
    await launcher.resume(id);
    return folder.summary(id);
  });
  app.get('/api/runs/:id/images/:image', async (req, reply) => {
    const { id, image } = req.params as { id: string; image: string };
    const file = folder.imagePath(id, image.replace(/\.png$/, ''));
    // an image is written once (atomically); a resume may rewrite a torn one, so revalidate after a minute
    return reply.type('image/png').header('cache-control', 'private, max-age=60').send(createReadStream(file));
  });
  app.get('/api/runs/:id/events', async (req, reply) => {
    const id = (req.params as { id: string }).id;
    folder.runDir(id); // a 404 before the stream starts
    reply.hijack();
    streamRun(reply.raw, (on, ms) => followRun(folder, id, () => launcher.isActive(id), on, ms), streams, options.pollMs);
  });

  app.get('/api/evals', async () => ({ folder: evals, evals: listEvals(evals) }));
  app.get('/api/evals/:name', async (req) => {
    const dir = evalDir(evals, (req.params as { name: string }).name);
    const results = JSON.parse(await fs.readFile(path.join(dir, 'results.json'), 'utf8')) as Record<string, unknown>;
    return { name: path.basename(dir), setup: results.setup ?? null, tags: results.tags ?? [], cells: results.cells ?? [], wallMs: results.wallMs ?? null };
  });
  app.get('/api/evals/:name/scaling.svg', async (req, reply) => {
    const dir = evalDir(evals, (req.params as { name: string }).name);
    return reply.type('image/svg+xml').header('cache-control', 'no-cache').send(await fs.readFile(path.join(dir, 'scaling.svg')));
  });

  const port = options.port ?? DEFAULT_UI_PORT;
  try {
    await app.listen({ port, host: HOST });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UserError(`cannot listen on ${HOST}:${port}: the port is in use (ui --port picks another)`);
    if (code === 'EACCES') throw new UserError(`cannot listen on ${HOST}:${port}: permission denied`);
    throw err;
  }
  const bound = (app.server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${HOST}:${bound}/`,
    port: bound,
    launcher,
    close() {
      closing ??= (async () => {
        await launcher.close();
        for (const end of [...streams]) end();
        await app.close();
      })();
      return closing;
    },
  };
}

/**
 * A run as server-sent events: `run` (its summary, at the start and on each change), `calls` (new events.jsonl
 * lines), `end` once it is over. `streams` holds the open streams' finishers, for close().
 */
function streamRun(res: ServerResponse, follow: (on: FollowHandlers, pollMs?: number) => Follower, streams: Set<() => void>, pollMs: number | undefined): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
  const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const finish = () => {
    follower.stop();
    streams.delete(finish);
    res.end();
  };
  const follower = follow(
    {
      run: (s) => send('run', s),
      calls: (events) => send('calls', events),
      end: () => {
        send('end', {});
        finish();
      },
    },
    pollMs,
  );
  streams.add(finish);
  res.on('close', finish);
}

function count(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,9}$/.test(value)) throw new ApiError(400, `${name} must be a whole number, got ${quote(value)}`, 'invalid_value', name);
  return Number(value);
}
