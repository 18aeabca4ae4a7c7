import type { CallOptions, Reflector, ReflectRequest } from '../../core/roles.js';
import type { Reflection } from '../../core/types.js';
import { editToText, parseEdit, planEdits, type Edit } from '../../shapeworld/edits.js';
import { parsePrompt } from '../../shapeworld/prompts.js';
import type { Detection, PromptSpec } from '../../shapeworld/rules.js';
import { canonicalSpec } from './spec.js';
import { PerceptionRole } from './perception.js';

/** Two edits that ask for the same change (texts may differ in article or colour detail). */
export function editKey(e: Edit): string {
  const ref = (o: { shape: string; color?: string }): string => o.shape + (o.color ? `:${o.color}` : '');
  switch (e.op) {
    case 'add':
      return `add ${ref(e.object)}${e.relation ? ` ${e.relation.rel} ${ref(e.relation.ref)}` : ''}`;
    case 'remove':
      return `remove ${ref(e.object)}`;
    case 'replace':
      return `replace ${ref(e.object)} ${ref(e.with)}`;
    case 'move':
      return `move ${ref(e.object)} ${e.relation.rel} ${ref(e.relation.ref)}`;
  }
}

/**
 * The edits a previous round already asked for and the image still needs are asked for another way: a move that
 * did not happen becomes remove-then-add at the right place, a replacement becomes remove-then-add. Endless
 * repeats of an instruction the corrector cannot follow are what this avoids.
 */
export function escalate(edits: readonly Edit[], previous: readonly Edit[]): Edit[] {
  const before = new Set(previous.map(editKey));
  return edits.flatMap((e): Edit[] => {
    if (!before.has(editKey(e))) return [e];
    if (e.op === 'move') return [{ op: 'remove', object: e.object }, { op: 'add', object: e.object, relation: e.relation }];
    if (e.op === 'replace') return [{ op: 'remove', object: e.object }, { op: 'add', object: e.with }];
    return [e];
  });
}

/** The reflection for an image: the edits that turn what is seen into what the original prompt asks. */
export function reflectOn(detections: readonly Detection[], spec: PromptSpec, previous?: Reflection): Reflection {
  const prev = (previous?.items ?? []).map(parseEdit).filter((e): e is Edit => e !== null);
  const items = escalate(planEdits(detections, spec), prev).map(editToText);
  return { text: items.join('\n'), items };
}

/**
 * The embedded reflector: a learned perception model (an object map, see perception.ts) reads the
 * objects in the image; comparing them with the original prompt's parse gives edit instructions in the project's
 * edit language (Add / Remove / Replace / Move, placed relative to named objects), none when the image looks right.
 */
export class EmbeddedReflector extends PerceptionRole implements Reflector {
  async reflect(req: ReflectRequest, opts?: CallOptions): Promise<Reflection> {
    opts?.signal?.throwIfAborted();
    const detections = await this.perception.detect(req.image);
    return reflectOn(detections, canonicalSpec(parsePrompt(req.prompt)), req.previousReflection);
  }
}
