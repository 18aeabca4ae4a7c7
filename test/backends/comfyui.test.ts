/**
 * ComfyUI backend against a local server following ComfyUI's server routes: POST /prompt {prompt, client_id} →
 * {prompt_id, number, node_errors}; GET /history/{prompt_id} ({} until done, then {id: {status, outputs}});
 * GET /view?filename&subfolder&type; POST /upload/image (multipart `image`) → {name, subfolder, type}.
 * Docs: https://docs.comfy.org/development/comfyui-server/comms_routes
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createComfyBackend, fillWorkflow, loadWorkflow } from '../../src/backends/comfyui/index.js';
import { UserError } from '../../src/core/errors.js';
import { comfyHandler, formData, isPng, json, jsonBody, startServer, tinyPng, type TestServer } from './helpers.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const T2I = 'examples/comfyui/flux-dev-t2i.json';
const EDIT = 'examples/comfyui/flux-kontext-edit.json';

describe('comfyui', () => {
  it('the shipped templates load and fill: seed becomes a number, prompt text is JSON-safe', () => {
    const wf = loadWorkflow(T2I, ['prompt', 'seed']);
    const filled = fillWorkflow(wf, { prompt: 'a "quoted" cat', seed: 42 }) as any;
    expect(filled['8'].inputs.seed).toBe(42);
    expect(filled['4'].inputs.text).toBe('a "quoted" cat');
    const edit = fillWorkflow(loadWorkflow(EDIT, ['prompt', 'image']), { prompt: 'p', seed: 1, image: 'up.png' }) as any;
    expect(edit['4'].inputs.image).toBe('up.png');
  });

  it('generate: POST /prompt, poll /history, GET /view', async () => {
    server = await startServer(comfyHandler(2));
    const b = createComfyBackend({ url: server.url, workflow: T2I, pollMs: 5 });
    const img = await b.generator!.generate({ prompt: 'a red cube', seed: 9 });
    expect(isPng(img.png)).toBe(true);
    const paths = server.requests.map((r) => `${r.method} ${r.path.split('?')[0]}`);
    expect(paths).toEqual(['POST /prompt', 'GET /history/p-1', 'GET /history/p-1', 'GET /history/p-1', 'GET /view']);
    const body = jsonBody(server.requests[0]!);
    expect(body.prompt['8'].inputs.seed).toBe(9);
    expect(body.prompt['4'].inputs.text).toBe('a red cube');
    expect(typeof body.client_id).toBe('string');
    expect(server.requests[4]!.path).toContain('filename=rf_0001.png');
  });

  it('correct: uploads the image, fills {{image}} and the [Reflexion] prompt', async () => {
    server = await startServer(comfyHandler(0));
    const b = createComfyBackend({ url: server.url, correctorWorkflow: EDIT, pollMs: 5 });
    expect(b.generator).toBeUndefined();
    await b.corrector!.correct({ image: { png: new Uint8Array(await tinyPng()) }, prompt: 'a cube', reflection: { text: 'Recolor the cube red.', items: ['Recolor the cube red.'] }, seed: 3 });
    const up = await formData(server.requests[0]!);
    expect(server.requests[0]!.path).toBe('/upload/image');
    expect(up.get('image')).toBeInstanceOf(File);
    const wf = jsonBody(server.requests[1]!).prompt;
    expect(wf['4'].inputs.image).toBe('up.png');
    expect(wf['7'].inputs.text).toBe('a cube [Reflexion]: Recolor the cube red.');
  });

  it('an execution error in history fails the call with the node and message', async () => {
    server = await startServer((req, res) => {
      if (req.path === '/prompt') return json(res, 200, { prompt_id: 'p-1', number: 0, node_errors: {} });
      json(res, 200, { 'p-1': { status: { status_str: 'error', completed: false, messages: [['execution_error', { node_type: 'KSampler', exception_message: 'CUDA out of memory' }]] }, outputs: {} } });
    });
    const b = createComfyBackend({ url: server.url, workflow: T2I, pollMs: 5 });
    await expect(b.generator!.generate({ prompt: 'x', seed: 1 })).rejects.toThrow(/KSampler: CUDA out of memory/);
  });

  it('a workflow rejected by /prompt (400 node_errors) is not retried', async () => {
    server = await startServer((_req, res) => json(res, 400, { error: { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: '' }, node_errors: {} }));
    const b = createComfyBackend({ url: server.url, workflow: T2I, pollMs: 5 });
    await expect(b.generator!.generate({ prompt: 'x', seed: 1 })).rejects.toThrow(/failed validation/);
    expect(server.requests).toHaveLength(1);
  });

  it('refuses a workflow without placeholders or in the UI format', async () => {
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const dir = mkdtempSync('/tmp/rf-comfy-');
    writeFileSync(`${dir}/a.json`, JSON.stringify({ '1': { class_type: 'X', inputs: { text: 'fixed' } } }));
    writeFileSync(`${dir}/b.json`, JSON.stringify({ nodes: [], links: [] }));
    expect(() => createComfyBackend({ workflow: `${dir}/a.json` })).toThrow(/no \{\{prompt\}\}/);
    expect(() => createComfyBackend({ workflow: `${dir}/b.json` })).toThrow(/UI format/);
    expect(() => createComfyBackend({})).toThrow(UserError);
  });
});
