import type { CallOptions, PromptRefiner, RefineRequest } from '../../core/roles.js';
import { parseEdit, planEdits, type Edit } from '../../shapeworld/edits.js';
import { refinePrompt } from '../../shapeworld/refine.js';
import { parsePrompt } from '../../shapeworld/prompts.js';
import { PerceptionRole } from './perception.js';
import { canonicalSpec } from './spec.js';

/**
 * The embedded prompt refiner: rewrites the prompt into the layout wording the generator was fine-tuned on
 * (layout.ts) — every object with its own colour and an explicit place, counts as that many placed objects,
 * relations as opposite places. What the image already has right keeps its place; the reflection's edits (or,
 * without one, the edits the perception model's reading calls for) say what changes. Every refined prompt parses
 * to the original prompt's objects.
 */
export class EmbeddedRefiner extends PerceptionRole implements PromptRefiner {
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
