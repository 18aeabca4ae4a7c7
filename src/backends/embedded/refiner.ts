import type { CallOptions, PromptRefiner, RefineRequest } from '../../core/roles.js';
import { parseEdit, planEdits, type Edit, type ObjectRef } from '../../shapeworld/edits.js';
import { layoutText, planLayout } from '../../shapeworld/layout.js';
import { parsePrompt } from '../../shapeworld/prompts.js';
import type { Detection, PromptSpec } from '../../shapeworld/rules.js';
import type { Perception } from './perception.js';
import { canonicalSpec, encodePrompt } from './spec.js';

const matches = (d: Detection, o: ObjectRef): boolean => d.shape === o.shape && (!o.color || d.color === o.color);

/**
 * What the image would hold after the edits, as far as a layout needs it: removed objects are gone, a replaced
 * one takes its new class and colour where it stood, a moved one loses its place (the layout puts it where its
 * relation wants it), added ones are left to the layout.
 */
export function applyEditsToDetections(detections: readonly Detection[], edits: readonly Edit[]): Detection[] {
  let out = detections.slice();
  for (const e of edits) {
    if (e.op === 'add') continue;
    const i = out.findIndex((d) => matches(d, e.object));
    if (i < 0) continue;
    if (e.op === 'remove' || e.op === 'move') out = out.filter((_, k) => k !== i);
    else out = out.map((d, k) => (k === i ? { ...d, shape: e.with.shape, color: e.with.color ?? d.color } : d));
  }
  return out;
}

/** The refined prompt: the original prompt's objects laid out explicitly, from what is seen and the reflection. */
export function refinePrompt(spec: PromptSpec, detections: readonly Detection[], edits: readonly Edit[]): string {
  return layoutText(planLayout(spec, applyEditsToDetections(detections, edits)));
}

/**
 * The embedded prompt refiner: rewrites the prompt into the layout wording the generator was fine-tuned on
 * (layout.ts) — every object with its own colour and an explicit place, counts as that many placed objects,
 * relations as opposite places. What the image already has right keeps its place; the reflection's edits (or,
 * without one, the edits the perception model's reading calls for) say what changes. Every refined prompt parses
 * to the original prompt's objects.
 */
export class EmbeddedRefiner implements PromptRefiner {
  readonly name = 'embedded';
  readonly concurrency = 64;

  constructor(private readonly perception: Perception) {}

  checkPrompt(prompt: string): void {
    encodePrompt(prompt);
  }

  async refine(req: RefineRequest, opts?: CallOptions): Promise<string> {
    opts?.signal?.throwIfAborted();
    const spec = canonicalSpec(parsePrompt(req.prompt));
    const detections = await this.perception.detect(req.image);
    const edits = req.reflection
      ? req.reflection.items.map(parseEdit).filter((e): e is Edit => e !== null)
      : planEdits(detections, spec);
    return refinePrompt(spec, detections, edits);
  }
}
