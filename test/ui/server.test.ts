import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProceduralBackend } from '../../src/backends/procedural/index.js';
import { registerBuiltinBackends } from '../../src/backends/builtin.js';
import { runSearch } from '../../src/run.js';
import { EVENTS_FILE, readEvents } from '../../src/store/run-store.js';
import { startUi, type RunningUi } from '../../src/ui/server.js';
import { tmpDir } from '../helpers/cli.js';

registerBuiltinBackends();

/** A raw request, so that Host and Origin can be anything. */
function request(ui: RunningUi, p: string, opts: { method?: string; headers?: Record<string, string>; body?: unknown } = {}): Promise<{ status: number; text: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = http.request(
      { host: '127.0.0.1', port: ui.port, path: p, method: opts.method ?? 'GET', headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...opts.headers } },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The `calls` of a run's event stream, until `end`. */
function streamedCalls(ui: RunningUi, id: string): Promise<{ calls: unknown[]; runs: Array<{ status: string }> }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: ui.port, path: `/api/runs/${id}/events` }, (res) => {
      let buf = '';
      const calls: unknown[] = [];
      const runs: Array<{ status: string }> = [];
      res.on('data', (d: Buffer) => {
        buf += d.toString();
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const msg = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const event = /^event: (.*)$/m.exec(msg)?.[1];
          const data = JSON.parse(/^data: (.*)$/m.exec(msg)?.[1] ?? 'null');
          if (event === 'calls') calls.push(...data);
          if (event === 'run') runs.push(data);
        }
      });
      res.on('end', () => resolve({ calls, runs }));
    }).on('error', reject);
  });
}

describe('ui server', () => {
  let ui: RunningUi;
  let runs: string;
  const ids: string[] = [];

  beforeAll(async () => {
    runs = tmpDir('rf-ui-');
    for (const seed of [1, 2, 3]) {
      const o = await runSearch({
        prompt: 'a red circle left of a blue square',
        params: { strategy: 'reflection', samples: 3, width: 2, depth: 1, seed, chainHead: 'latest' },
        roles: createProceduralBackend(),
        outDir: runs,
        report: false,
      });
      ids.push(path.basename(o.dir));
    }
    mkdirSync(path.join(runs, 'not-a-run'));
    writeFileSync(path.join(runs, 'stray.txt'), 'x');
    ui = await startUi({ runs, port: 0, evals: path.join(runs, 'no-evals') });
  });
  afterAll(async () => {
    await ui?.close();
  });

  it('lists runs newest first, a page at a time, from run.json only', async () => {
    const all = JSON.parse((await request(ui, '/api/runs')).text);
    expect(all.total).toBe(3);
    expect(all.runs.map((r: { id: string }) => r.id)).toEqual([...ids].sort().reverse());
    const page = JSON.parse((await request(ui, '/api/runs?offset=1&limit=1')).text);
    expect(page.total).toBe(3);
    expect(page.runs.map((r: { id: string }) => r.id)).toEqual([[...ids].sort().reverse()[1]]);
    expect(page.runs[0]).toMatchObject({ status: 'done', strategy: 'reflection', images: 5 });
  });

  it('streams a finished run: every event of events.jsonl in file order, its run.json, then ends', async () => {
    const { calls, runs: summaries } = await streamedCalls(ui, ids[0]!);
    expect(calls).toEqual(await readEvents(path.join(runs, ids[0]!, EVENTS_FILE)));
    expect(summaries.at(-1)?.status).toBe('done');
  });

  it('serves a run image as PNG and refuses paths outside the run', async () => {
    const events = await readEvents(path.join(runs, ids[0]!, EVENTS_FILE));
    const img = events.find((e) => e.outputId)!.outputId!;
    const ok = await request(ui, `/api/runs/${ids[0]}/images/${img}.png`);
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toBe('image/png');
    for (const p of [`/api/runs/${ids[0]}/images/..%2F..%2Frun.json`, `/api/runs/..%2F${path.basename(runs)}/images/x.png`, '/api/runs/not-a-run', '/api/runs/stray.txt']) {
      expect((await request(ui, p)).status, p).toBe(404);
    }
  });

  it('refuses a foreign Host and a cross-origin post, as serve does', async () => {
    const host = await request(ui, '/api/runs', { headers: { host: 'evil.example:8090' } });
    expect(host.status).toBe(403);
    expect(JSON.parse(host.text).error.code).toBe('host_not_allowed');
    const origin = await request(ui, '/api/runs', { method: 'POST', headers: { origin: 'http://evil.example' }, body: { prompt: 'x', backend: 'procedural' } });
    expect(origin.status).toBe(403);
    expect(JSON.parse(origin.text).error.code).toBe('origin_not_allowed');
    expect((JSON.parse((await request(ui, '/api/runs')).text) as { total: number }).total).toBe(3); // nothing started
  });

  it('answers bad requests with one clear 400 and starts nothing', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ prompt: '  ', backend: 'procedural' }, /prompt: the prompt is empty/],
      [{ prompt: 'a cat', backend: 'module:/tmp/evil.mjs' }, /unknown backend/],
      [{ prompt: 'a cat', config: '../etc/passwd' }, /not one of the listed config files/],
      [{ prompt: 'a cat', backend: 'procedural', samples: 0 }, /samples/],
      [{ prompt: 'a cat', backend: 'procedural', depth: 100000 }, /above the limit/],
      [{ prompt: 'a cat', backend: 'procedural', extra: 1 }, /extra|Unrecognized/i],
    ];
    for (const [body, message] of cases) {
      const res = await request(ui, '/api/runs', { method: 'POST', body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(JSON.parse(res.text).error.message).toMatch(message);
    }
    expect((await request(ui, '/api/runs?limit=x')).status).toBe(400);
    expect((await request(ui, `/api/runs/${ids[0]}/resume`, { method: 'POST', body: {} })).status).toBe(409); // done
    expect((await request(ui, `/api/runs/${ids[0]}/cancel`, { method: 'POST', body: {} })).status).toBe(409); // not running here
    expect((JSON.parse((await request(ui, '/api/runs')).text) as { total: number }).total).toBe(3);
  });

  it('serves the page with a policy that allows nothing but this server', async () => {
    const page = await request(ui, '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toMatch(/default-src 'none'; script-src 'self'/);
    expect(page.text).not.toMatch(/https?:\/\//);
    for (const asset of ['/ui.js', '/ui.css', '/report.css']) {
      const res = await request(ui, asset);
      expect(res.status, asset).toBe(200);
      expect(res.text, asset).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
    }
  });
});
