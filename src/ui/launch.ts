/**
 * The web view's write side: start a run, cancel it (it stays resumable: `interrupted`) and resume it, in this
 * process, through the library's run facade (runSearch / resumeSearch) — the same run directories, events and
 * locks as `reflectionflow run`.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { listBackends } from '../backends/registry.js';
import { loadConfigFile, redactSecrets } from '../config/load.js';
import { absoluteBackends, resolveParams } from '../config/resolve.js';
import type { ConfigFile } from '../config/schema.js';
import { errorMessage } from '../core/errors.js';
import { STRATEGIES } from '../core/types.js';
import { doneRun, resumeRunDir, rolesFor, runSearch, type RunOptions, type RunOutcome } from '../run.js';
import { ApiError, quote } from '../server/errors.js';
import type { RunFolder } from './runs.js';

const CONFIG_FILE = /\.(json|ya?ml)$/i;

/** What the page's form sends. Backends by listed name only, configs by listed file only: a page loads no module. */
export const startRequestSchema = z
  .object({
    prompt: z.string().trim().min(1, 'the prompt is empty').max(32_000),
    strategy: z.enum(STRATEGIES).optional(),
    samples: z.number().int().positive().optional(),
    width: z.number().int().positive().optional(),
    depth: z.number().int().nonnegative().optional(),
    seed: z.number().int().nonnegative().optional(),
    backend: z.string().min(1).optional(),
    config: z.string().min(1).optional(),
  })
  .strict();
export type StartRequest = z.infer<typeof startRequestSchema>;

export interface LaunchOptions {
  folder: RunFolder;
  /** folder whose *.json / *.yaml config files the form offers */
  configsDir?: string;
  /** most runs this process runs at once (default 4) */
  maxActive?: number;
  /** one line per run started, cancelled or ended */
  log?: (line: string) => void;
}

export class Launcher {
  private readonly active = new Map<string, { controller: AbortController; done: Promise<unknown> }>();

  constructor(private readonly opts: LaunchOptions) {}

  isActive(id: string): boolean {
    return this.active.has(id);
  }

  /** The choices the form offers. */
  choices(): { backends: Array<{ name: string; description: string }>; configs: string[]; strategies: readonly string[] } {
    return {
      backends: listBackends().map((b) => ({ name: b.name, description: b.description })),
      configs: this.configs(),
      strategies: STRATEGIES,
    };
  }

  private configs(): string[] {
    if (!this.opts.configsDir) return [];
    try {
      return readdirSync(this.opts.configsDir, { withFileTypes: true })
        .filter((d) => d.isFile() && CONFIG_FILE.test(d.name))
        .map((d) => d.name)
        .sort();
    } catch {
      return [];
    }
  }

  /** Start a new run; resolves with its id once its directory exists. */
  async start(body: unknown): Promise<string> {
    const parsed = startRequestSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new ApiError(400, `${issue.path.join('.') || 'body'}: ${issue.message}`, 'invalid_value', issue.path.join('.') || null);
    }
    const req = parsed.data;
    let config: ConfigFile = {};
    if (req.config !== undefined) {
      if (!this.configs().includes(req.config)) throw new ApiError(400, `config ${quote(req.config)} is not one of the listed config files`, 'invalid_value', 'config');
      config = loadConfigFile(path.join(this.opts.configsDir!, req.config)).config;
    }
    if (req.backend !== undefined) {
      if (!listBackends().some((b) => b.name === req.backend)) throw new ApiError(400, `unknown backend ${quote(req.backend)}`, 'invalid_value', 'backend');
      config.backend = req.backend;
    }
    absoluteBackends(config);
    const params = resolveParams(config, {
      ...(req.strategy ? { strategy: req.strategy as RunOptions['params']['strategy'] } : {}),
      samples: req.samples,
      width: req.width,
      depth: req.depth,
      seed: req.seed,
    });
    const roles = await rolesFor(config, params.strategy);
    const size = config.size;
    const stored = redactSecrets({ ...config, search: params, ...(size ? { size } : {}) });
    return this.launch(null, (common) =>
      runSearch({ ...common, roles, prompt: req.prompt, params, outDir: this.opts.folder.dir, config: stored, ...(size ? { size } : {}), ...(config.prices ? { prices: config.prices } : {}) }),
    );
  }

  /** Resume an interrupted or incomplete run (finished calls replayed from its events). */
  async resume(id: string): Promise<void> {
    if (this.active.has(id)) throw new ApiError(409, `run ${quote(id)} is running`, 'run_in_progress');
    const dir = this.opts.folder.runDir(id);
    if (await doneRun(dir)) throw new ApiError(409, `run ${quote(id)} is already done; nothing to resume`, 'run_done');
    await this.launch(id, (common) => resumeRunDir(dir, common));
  }

  /** Stop a run this process runs; resolves once it is recorded as interrupted. */
  async cancel(id: string): Promise<void> {
    const a = this.active.get(id);
    if (!a) throw new ApiError(409, `run ${quote(id)} is not running in this web view`, 'run_not_active');
    a.controller.abort(new Error('cancelled from the web view'));
    await a.done;
  }

  /** Cancel every run and wait for each to be recorded. */
  async close(): Promise<void> {
    for (const a of this.active.values()) a.controller.abort(new Error('the web view is shutting down'));
    await Promise.all([...this.active.values()].map((a) => a.done));
  }

  /**
   * Run `go` with a signal; resolves with the run's id as soon as its directory is created (or locked, for a
   * resume), rejects when it fails before that (a bad prompt, a run locked by another process).
   */
  private launch(id: string | null, go: (common: Pick<RunOptions, 'signal' | 'onCreated' | 'report'>) => Promise<RunOutcome>): Promise<string> {
    const max = this.opts.maxActive ?? 4;
    if (this.active.size >= max) throw new ApiError(429, `${max} runs are running already; wait for one to end or cancel one`, 'too_many_runs');
    const controller = new AbortController();
    const log = this.opts.log ?? (() => {});
    return new Promise<string>((resolve, reject) => {
      let runId = id;
      const entry = { controller, done: Promise.resolve() as Promise<unknown> };
      if (id) this.active.set(id, entry);
      const done = go({
        signal: controller.signal,
        report: true,
        onCreated: (dir) => {
          runId = path.basename(dir);
          this.active.set(runId, entry);
          log(`${id ? 'resumed' : 'started'} ${runId}`);
          resolve(runId);
        },
      }).then(
        (o) => log(`${o.run.status} ${runId}`),
        (err) => {
          if (runId) log(`${controller.signal.aborted ? 'interrupted' : 'stopped'} ${runId}: ${errorMessage(err)}`);
          reject(err); // a no-op once the run was created: its failure is in run.json
        },
      );
      entry.done = done.finally(() => {
        if (runId && this.active.get(runId) === entry) this.active.delete(runId);
      });
    });
  }
}
