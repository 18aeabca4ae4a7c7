/**
 * The procedural ShapeWorld backend: deterministic roles with no learned model, for testing the search engine and
 * the eval harness. It must be named explicitly (`procedural`); it is never a default.
 *
 * - generator: parses the prompt and renders a scene that satisfies it, except that with probability `defectRate`
 *   (per prompt and seed) the scene carries one defect: a missing or extra object, a wrong colour, a wrong relation,
 *   a swapped colour binding or a wrong class.
 * - verifier `oracle`: the pixel evaluator; 1 for a correct image, else 0.9 × the fraction of satisfied clauses.
 * - reflector: compares the evaluator's detections with the prompt and writes edit instructions, one per line.
 * - refiner: restates the original prompt explicitly (exact counts, spelled-out relations), dropping nothing.
 * - corrector: reconstructs the scene from the previous image's detections and carries out each instruction of the
 *   reflection with probability `fixRate`, then renders the result.
 */
import { UserError } from '../../core/errors.js';
import type {
  CallOptions,
  CorrectRequest,
  Corrector,
  GenerateRequest,
  Generator,
  PromptRefiner,
  RefineRequest,
  ReflectRequest,
  Reflector,
  Verifier,
  VerifyRequest,
} from '../../core/roles.js';
import type { Evaluation, Image, PromptMeta, Reflection } from '../../core/types.js';
import { detectObjects, evaluateImage } from '../../shapeworld/evaluate.js';
import { parsePrompt } from '../../shapeworld/prompts.js';
import { mixSeed, Rng } from '../../shapeworld/random.js';
import { MODEL_SIZE, RENDER_SIZES, renderScene } from '../../shapeworld/render.js';
import type { IncludeClause, PromptSpec, Relation } from '../../shapeworld/rules.js';
import { applicableDefects, pickDefect, sceneForSpec, type Scene } from '../../shapeworld/scene.js';
import { PLURALS, type Shape } from '../../shapeworld/shapes.js';
import { applyEdit, editToText, parseEdit, planEdits } from '../../shapeworld/edits.js';
import { OptionReader } from '../options.js';

export { applyEdit, editToText, parseEdit, planEdits, type Edit, type ObjectRef } from '../../shapeworld/edits.js';

export interface ProceduralOptions {
  /** probability that a generated image carries one defect (default 0.6) */
  defectRate?: number;
  /** probability that the corrector carries out each instruction (default 0.8) */
  fixRate?: number;
  /** image side in pixels (default MODEL_SIZE) */
  size?: number;
  /** calls in flight per role (default 2; the work is CPU-bound and in-process) */
  concurrency?: number;
  /** wait this long before each call, as a remote service would (benchmarks of I/O-bound work; default 0) */
  latencyMs?: number;
}

export interface ProceduralBackend {
  generator: Generator;
  verifier: Verifier;
  reflector: Reflector;
  refiner: PromptRefiner;
  corrector: Corrector;
}

function abortCheck(opts?: CallOptions): void {
  if (opts?.signal?.aborted) throw opts.signal.reason instanceof Error ? opts.signal.reason : new Error('aborted');
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The spec a verifier or reflector judges against: the GenEval metadata when given, else the parsed prompt. */
function specFor(prompt: string, meta?: PromptMeta): PromptSpec {
  if (meta && Array.isArray(meta.include) && meta.include.length > 0) {
    return {
      include: meta.include as unknown as IncludeClause[],
      ...(Array.isArray(meta.exclude) ? { exclude: meta.exclude as unknown as PromptSpec['exclude'] } : {}),
    };
  }
  return parsePrompt(prompt);
}

function toImage(png: Uint8Array): Image {
  return { png };
}

function renderableSize(size: number): void {
  if (!Number.isInteger(size) || size < RENDER_SIZES.min || size > RENDER_SIZES.max) {
    throw new UserError(`the procedural backend renders ${RENDER_SIZES.min}–${RENDER_SIZES.max} pixels per side, not ${size}`);
  }
}

/** Make the five procedural roles. Options as in a config file: `{defectRate, fixRate, size, concurrency}`. */
export function createProceduralBackend(options: ProceduralOptions | Record<string, unknown> = {}): ProceduralBackend {
  const r = new OptionReader('procedural', options as Record<string, unknown>);
  const defectRate = r.number('defectRate', 0.6, 0, 1);
  const fixRate = r.number('fixRate', 0.8, 0, 1);
  const size = r.int('size', MODEL_SIZE, 16);
  const concurrency = r.int('concurrency', 2, 1);
  const latencyMs = r.int('latencyMs', 0, 0);
  r.check();
  const beforeCall = async (opts?: CallOptions): Promise<void> => {
    if (latencyMs > 0) await delay(latencyMs, opts?.signal);
    abortCheck(opts);
  };

  const generator: Generator = {
    name: 'procedural',
    concurrency,
    checkPrompt(prompt: string): void {
      parsePrompt(prompt);
    },
    checkSize: renderableSize,
    async generate(req: GenerateRequest, opts?: CallOptions): Promise<Image> {
      await beforeCall(opts);
      const spec = parsePrompt(req.prompt);
      const rng = new Rng(mixSeed(req.seed, req.prompt, 'defect'));
      const defect = rng.chance(defectRate) ? pickDefect(applicableDefects(spec), rng) : null;
      const scene = sceneForSpec(spec, mixSeed(req.seed, req.prompt, 'scene'), { defect });
      return toImage(await renderScene(scene, req.size ?? size));
    },
  };

  const verifier: Verifier = {
    name: 'oracle',
    concurrency,
    async verify(req: VerifyRequest, opts?: CallOptions): Promise<Evaluation> {
      await beforeCall(opts);
      const j = await evaluateImage(req.image.png, specFor(req.prompt, req.meta));
      const fraction = j.clauses ? j.satisfied / j.clauses : 0;
      return {
        score: j.correct ? 1 : 0.9 * fraction,
        label: j.correct ? 'yes' : 'no',
        raw: j.correct ? 'correct' : j.reason,
      };
    },
  };

  const reflector: Reflector = {
    name: 'procedural',
    concurrency,
    async reflect(req: ReflectRequest, opts?: CallOptions): Promise<Reflection> {
      await beforeCall(opts);
      const spec = parsePrompt(req.prompt);
      const detections = await detectObjects(req.image.png);
      const items = planEdits(detections, spec).map(editToText);
      return { text: items.length ? items.join('\n') : 'No changes needed: the image matches the prompt.', items };
    },
  };

  const refiner: PromptRefiner = {
    name: 'procedural',
    concurrency,
    async refine(req: RefineRequest, opts?: CallOptions): Promise<string> {
      await beforeCall(opts);
      return explicitPrompt(parsePrompt(req.prompt));
    },
  };

  const corrector: Corrector = {
    name: 'procedural',
    concurrency,
    checkSize: renderableSize,
    async correct(req: CorrectRequest, opts?: CallOptions): Promise<Image> {
      await beforeCall(opts);
      const detections = await detectObjects(req.image.png, 'the image to correct');
      let scene: Scene = detections.map((d) => ({ shape: d.shape, color: d.color, cx: d.cx, cy: d.cy, r: d.r }));
      const rng = new Rng(mixSeed(req.seed, req.prompt, req.reflection.text, 'correct'));
      const lines = req.reflection.items.length ? req.reflection.items : req.reflection.text.split('\n');
      for (const line of lines) {
        const edit = parseEdit(line);
        if (!edit || !rng.chance(fixRate)) continue;
        scene = applyEdit(scene, edit, rng) ?? scene;
      }
      return toImage(await renderScene(scene, req.size ?? size));
    },
  };

  return { generator, verifier, reflector, refiner, corrector };
}

const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'];
const REL_TEXT: Record<Relation, string> = {
  'left of': 'to the left of',
  'right of': 'to the right of',
  above: 'above',
  below: 'below',
};

/**
 * The refiner's rewrite: every object with an exact count and its colour, relations spelled out, on the plain
 * background. It parses back to a spec that contains every clause of the original (plus exact-count excludes).
 */
export function explicitPrompt(spec: PromptSpec): string {
  const np = (c: IncludeClause): string => {
    const n = NUMBER_WORDS[c.count] ?? String(c.count);
    const noun = c.count === 1 ? c.class : PLURALS[c.class as Shape];
    return `exactly ${n} ${c.color ? `${c.color} ` : ''}${noun}`;
  };
  const parts: string[] = [];
  const consumed = new Set<number>();
  spec.include.forEach((c, i) => {
    if (c.position) {
      const t = spec.include[c.position[1]];
      if (t) consumed.add(c.position[1]);
    }
    void i;
  });
  spec.include.forEach((c, i) => {
    const t = c.position ? spec.include[c.position[1]] : undefined;
    if (c.position && t) parts.push(`${np(c)} placed clearly ${REL_TEXT[c.position[0]]} ${np(t)}`);
    else if (!consumed.has(i)) parts.push(np(c));
  });
  return `a photo of ${parts.join(', and ')} on a plain gray background`;
}

export { proceduralProvider } from './provider.js';
