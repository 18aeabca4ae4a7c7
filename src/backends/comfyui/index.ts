/**
 * ComfyUI over its HTTP API: any workflow (API format JSON) becomes a generator or a corrector.
 *
 * A workflow template holds placeholders in string values: `{{prompt}}` (the prompt; for the corrector,
 * `prompt [Reflexion]: reflection`), `{{seed}}`, `{{image}}` (the corrector's input image, uploaded first),
 * `{{size}}`/`{{width}}`/`{{height}}`. A value that is exactly `"{{seed}}"` (or a size placeholder) becomes a number.
 *
 * One call: [POST /upload/image] → POST /prompt {prompt, client_id} → poll GET /history/{prompt_id} until the
 * prompt is done → GET /view?filename&subfolder&type for the first output image (or `outputNode`'s). Cancelling
 * stops polling and removes the prompt from ComfyUI's queue (best effort).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ModelOutputError, UserError, errorMessage } from '../../core/errors.js';
import { correctorInstruction, type Corrector, type Generator } from '../../core/roles.js';
import type { Image } from '../../core/types.js';
import { imageCorrector, imageGenerator, toPngImage } from '../http/images.js';
import { OptionReader } from '../options.js';
import { BackendError, ensureOk, readReliability, ReliableClient, sleep } from '../http/reliability.js';
import { refuseInlineSecrets } from '../http/secrets.js';

export interface ComfyBackend {
  generator?: Generator;
  corrector?: Corrector;
}

export type Workflow = Record<string, unknown>;

export function loadWorkflow(file: string, need: string[]): Workflow {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`comfyui backend: cannot read workflow ${file} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
  }
  let wf: unknown;
  try {
    wf = JSON.parse(text);
  } catch (err) {
    throw new UserError(`comfyui backend: workflow ${file} is not valid JSON: ${errorMessage(err).split('\n')[0]}`);
  }
  if (!wf || typeof wf !== 'object' || Array.isArray(wf)) throw new UserError(`comfyui backend: workflow ${file} must be a JSON object (ComfyUI's API format)`);
  if ('nodes' in wf && 'links' in wf) {
    throw new UserError(`comfyui backend: workflow ${file} is in the UI format; export it with "Export (API)" / "Save (API Format)"`);
  }
  for (const p of need) {
    if (!text.includes(`{{${p}}}`)) throw new UserError(`comfyui backend: workflow ${file} has no {{${p}}} placeholder`);
  }
  return wf as Workflow;
}

/** The workflow with placeholders filled (a deep copy). */
export function fillWorkflow(wf: Workflow, values: { prompt: string; seed?: number; image?: string; size?: number }): Workflow {
  const numeric: Record<string, number | undefined> = { seed: values.seed, size: values.size, width: values.size, height: values.size };
  const fill = (v: unknown): unknown => {
    if (typeof v === 'string') {
      const exact = /^\{\{(seed|size|width|height)\}\}$/.exec(v);
      if (exact) {
        const n = numeric[exact[1]!];
        if (n === undefined) throw new UserError(`comfyui backend: the workflow needs {{${exact[1]}}} but the call has none (set the 'size' option)`);
        return n;
      }
      return v.replace(/\{\{(prompt|seed|image|size|width|height)\}\}/g, (_m, name: string) => {
        const s = name === 'prompt' ? values.prompt : name === 'image' ? values.image : numeric[name];
        if (s === undefined) throw new UserError(`comfyui backend: the workflow needs {{${name}}} but the call has none`);
        return String(s);
      });
    }
    if (Array.isArray(v)) return v.map(fill);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)]));
    return v;
  };
  return fill(wf) as Workflow;
}

interface HistoryImage {
  filename: string;
  subfolder?: string;
  type?: string;
}

interface HistoryEntry {
  status?: { status_str?: string; completed?: boolean; messages?: Array<[string, Record<string, unknown>]> };
  outputs?: Record<string, { images?: HistoryImage[] }>;
}

function readOptions(options: Record<string, unknown>) {
  refuseInlineSecrets('comfyui', options);
  const r = new OptionReader('comfyui', options);
  const o = {
    base: r.string('baseUrl', 'http://127.0.0.1:8188').replace(/\/+$/, ''),
    workflowFile: r.string('workflow'),
    correctorFile: r.string('correctorWorkflow'),
    pollMs: r.int('pollMs', 500, 1),
    outputNode: r.string('outputNode'),
    fixedSize: r.int('size', 0, 0) || undefined,
    rel: readReliability(r, { timeoutMs: 600_000, concurrency: 1 }),
  };
  r.check();
  if (!o.workflowFile && !o.correctorFile) {
    throw new UserError("comfyui backend: set 'workflow' (generator) and/or 'correctorWorkflow' (corrector) to a workflow JSON file");
  }
  return o;
}

export function createComfyBackend(options: Record<string, unknown> = {}): ComfyBackend {
  const { base, workflowFile, correctorFile, pollMs, outputNode, fixedSize, rel } = readOptions(options);
  const genWf = workflowFile ? loadWorkflow(workflowFile, ['prompt', 'seed']) : undefined;
  const corWf = correctorFile ? loadWorkflow(correctorFile, ['prompt', 'image']) : undefined;

  const http = new ReliableClient('comfyui', rel);
  const clientId = randomUUID();

  const getJson = async (path: string, signal: AbortSignal): Promise<unknown> => {
    const res = await ensureOk(await http.fetch(`${base}${path}`, { signal }), `comfyui GET ${path.split('?')[0]}`);
    return res.json();
  };

  const upload = async (image: Image, signal: AbortSignal): Promise<string> => {
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(image.png)], { type: 'image/png' }), `reflectionflow-${randomUUID()}.png`);
    form.append('type', 'input');
    form.append('overwrite', 'true');
    const res = await ensureOk(await http.fetch(`${base}/upload/image`, { method: 'POST', body: form, signal }), 'comfyui POST /upload/image');
    const out = (await res.json()) as { name?: unknown; subfolder?: unknown };
    if (typeof out.name !== 'string') throw new ModelOutputError('comfyui /upload/image answered no file name');
    return typeof out.subfolder === 'string' && out.subfolder ? `${out.subfolder}/${out.name}` : out.name;
  };

  const execute = async (wf: Workflow, signal: AbortSignal, what: string): Promise<Image> => {
    const res = await http.fetch(`${base}/prompt`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: wf, client_id: clientId }),
      signal,
    });
    if (!res.ok) {
      const body = (await res.json().catch(() => ({}))) as { error?: { message?: string; details?: string } };
      const msg = body.error ? `${body.error.message ?? ''} ${body.error.details ?? ''}`.trim() : `HTTP ${res.status}`;
      throw new BackendError(`comfyui rejected the workflow: ${msg}`, res.status);
    }
    const { prompt_id: id } = (await res.json()) as { prompt_id?: unknown };
    if (typeof id !== 'string') throw new ModelOutputError('comfyui /prompt answered no prompt_id');
    try {
      for (;;) {
        const hist = (await getJson(`/history/${encodeURIComponent(id)}`, signal)) as Record<string, HistoryEntry>;
        const entry = hist[id];
        if (entry?.status?.status_str === 'error') {
          const err = entry.status.messages?.find(([kind]) => kind === 'execution_error')?.[1];
          throw new BackendError(`comfyui: ${what} failed in node ${String(err?.node_type ?? '?')}: ${String(err?.exception_message ?? 'execution error')}`);
        }
        if (entry && (entry.status?.completed || (entry.outputs && Object.keys(entry.outputs).length))) {
          const img = pickImage(entry, outputNode);
          if (!img) throw new ModelOutputError(`comfyui: ${what} finished without an output image${outputNode ? ` in node ${outputNode}` : ''}`);
          const q = new URLSearchParams({ filename: img.filename, subfolder: img.subfolder ?? '', type: img.type ?? 'output' });
          const view = await ensureOk(await http.fetch(`${base}/view?${q}`, { signal }), 'comfyui GET /view');
          return toPngImage(new Uint8Array(await view.arrayBuffer()), what);
        }
        await sleep(pollMs, signal);
      }
    } catch (err) {
      if (signal.aborted) {
        // best effort: take the prompt off ComfyUI's queue so it does not run for nobody
        void globalThis
          .fetch(`${base}/queue`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ delete: [id] }) })
          .catch(() => undefined);
      }
      throw err;
    }
  };

  const out: ComfyBackend = {};
  if (genWf) {
    out.generator = imageGenerator(http, {
      name: `comfyui:${workflowFile}`,
      identity: `comfyui:${base}:${JSON.stringify(genWf)}`,
      make: (req, signal) => {
        const size = fixedSize ?? req.size;
        return execute(fillWorkflow(genWf, { prompt: req.prompt, seed: req.seed, ...(size ? { size } : {}) }), signal, 'generate');
      },
    });
  }
  if (corWf) {
    out.corrector = imageCorrector(http, {
      name: `comfyui:${correctorFile}`,
      make: async (req, signal) => {
        const image = await upload(req.image, signal);
        const size = fixedSize ?? req.size;
        const wf = fillWorkflow(corWf, { prompt: correctorInstruction(req.prompt, req.reflection), seed: req.seed, image, ...(size ? { size } : {}) });
        return execute(wf, signal, 'correct');
      },
    });
  }
  return out;
}

function pickImage(entry: HistoryEntry, node: string | undefined): HistoryImage | undefined {
  const outputs = entry.outputs ?? {};
  const nodes = node ? [node] : Object.keys(outputs);
  const all = nodes.flatMap((n) => outputs[n]?.images ?? []);
  return all.find((i) => (i.type ?? 'output') === 'output') ?? all[0];
}

export { comfyuiProvider } from './provider.js';
