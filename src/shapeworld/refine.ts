/**
 * The prompt refiner's rewrite, as a pure function: what an image would hold after a reflection's edits, laid out
 * explicitly in the layout wording (layout.ts). The embedded refiner applies it to what its perception model sees;
 * GenRef-Shapes applies it to the enhanced image's objects to caption the step a corrector is asked to make.
 */
import { findObject, type Edit } from './edits.js';
import { layoutText, planLayout } from './layout.js';
import type { Detection, PromptSpec } from './rules.js';

/**
 * What the image would hold after the edits, as far as a layout needs it: removed objects are gone, a replaced
 * one takes its new class and colour where it stood, a moved one loses its place (the layout puts it where its
 * relation wants it), added ones are left to the layout.
 */
export function applyEditsToDetections(detections: readonly Detection[], edits: readonly Edit[]): Detection[] {
  let out = detections.slice();
  for (const e of edits) {
    if (e.op === 'add') continue;
    const i = findObject(out, e.object);
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
