/**
 * GenEval's prompt schema and correctness rules, applied to ShapeWorld detections. The rules are the same whether
 * the detections come from pixels (evaluate.ts) or from a scene's ground truth (scene.ts), which is what lets the
 * agreement benchmark compare the two.
 */
import { UserError } from '../core/errors.js';
import { COLORS, SHAPES, isColor, isShape, type Color, type Shape } from './shapes.js';

export const TAGS = ['single_object', 'two_object', 'counting', 'colors', 'position', 'color_attr'] as const;
export type Tag = (typeof TAGS)[number];
/**
 * Compositional kinds just beyond GenEval's six (the project's own check set, see compositional.ts): a coloured
 * relation, a coloured count, three objects, a count with another object.
 */
export const COMPOSITIONAL_TAGS = ['color_position', 'color_count', 'three_object', 'count_object'] as const;
export type CompositionalTag = (typeof COMPOSITIONAL_TAGS)[number];

export const RELATIONS = ['left of', 'right of', 'above', 'below'] as const;
export type Relation = (typeof RELATIONS)[number];

/** One GenEval include clause. `position: [relation, index of the include clause it refers to]`. */
// (type aliases, not interfaces, so that records pass as the engine's PromptMeta)
export type IncludeClause = {
  class: string;
  count: number;
  color?: string;
  position?: [Relation, number];
};
export type ExcludeClause = {
  class: string;
  count: number;
};
/** What a prompt asks for, in GenEval's terms. */
export type PromptSpec = {
  include: IncludeClause[];
  exclude?: ExcludeClause[];
};
/** A GenEval metadata record: `{tag, include, exclude?, prompt}`. */
export type PromptRecord = PromptSpec & {
  tag: Tag | CompositionalTag;
  prompt: string;
};

/** One detected (or ground-truth) object. Coordinates are normalised to [0, 1] of the image side. */
export interface Detection {
  shape: Shape;
  color: Color;
  cx: number;
  cy: number;
  r: number;
  /** [x1, y1, x2, y2], normalised */
  box: [number, number, number, number];
  /** detector confidence proxy; detections of a class are ranked by it (GenEval takes the top ones) */
  score: number;
}

export interface Verdict {
  correct: boolean;
  /** GenEval-style reasons, one per failed clause, joined by newlines ('' when correct) */
  reason: string;
  /** include clauses satisfied / include + exclude clauses */
  satisfied: number;
  clauses: number;
}

/** The same relation seen from the other object: "A left of B" is "B right of A". */
export const MIRROR: Readonly<Record<Relation, Relation>> = { 'left of': 'right of', 'right of': 'left of', above: 'below', below: 'above' };

/**
 * One form for mirrored prompts: "A right of B" is "B left of A" under GenEval's rule (the centre offset is
 * antisymmetric and the margin symmetric), so a two-object relation is always written as left of / above, the
 * reference object first. Other specs are returned as they are.
 */
export function canonicalSpec(spec: PromptSpec): PromptSpec {
  const [b, x] = spec.include;
  if (spec.include.length !== 2 || !b || !x?.position || b.position || x.position[1] !== 0) return spec;
  const rel = x.position[0];
  if (rel !== 'right of' && rel !== 'below') return spec;
  const { position: _drop, ...subject } = x;
  void _drop;
  return { ...spec, include: [subject, { ...b, position: [MIRROR[rel], 0] }] };
}

/** GenEval's margin: each axis offset shrinks by this × (sum of the two boxes' sizes on that axis). */
export const POSITION_THRESHOLD = 0.1;

/**
 * Relations of A relative to B, as GenEval's `relative_position`: centre offset, shrunk per axis by the margin,
 * normalised by the unshrunk offset's length, thresholded at 0.5 (y grows downwards: negative dy is "above").
 */
export function relativePosition(a: Detection['box'], b: Detection['box']): Set<Relation> {
  const ca = [(a[0] + a[2]) / 2, (a[1] + a[3]) / 2];
  const cb = [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2];
  const dimA = [Math.abs(a[2] - a[0]), Math.abs(a[3] - a[1])];
  const dimB = [Math.abs(b[2] - b[0]), Math.abs(b[3] - b[1])];
  const offset = [(ca[0] as number) - (cb[0] as number), (ca[1] as number) - (cb[1] as number)] as const;
  const revised = offset.map((o, i) => {
    const shrunk = Math.max(Math.abs(o) - POSITION_THRESHOLD * ((dimA[i] as number) + (dimB[i] as number)), 0);
    return shrunk * Math.sign(o);
  });
  const rels = new Set<Relation>();
  // GenEval compares with 1e-3 in pixels; in normalised units that is 1e-3 of a ~512 px image.
  if (revised.every((v) => Math.abs(v) < 2e-6)) return rels;
  const norm = Math.hypot(offset[0], offset[1]);
  const dx = (revised[0] as number) / norm;
  const dy = (revised[1] as number) / norm;
  if (dx < -0.5) rels.add('left of');
  if (dx > 0.5) rels.add('right of');
  if (dy < -0.5) rels.add('above');
  if (dy > 0.5) rels.add('below');
  return rels;
}

/** Normalised relation strengths [dx, dy] (GenEval's quantities before thresholding); for margin checks. */
export function relationStrength(a: Detection['box'], b: Detection['box']): [number, number] {
  const ca = [(a[0] + a[2]) / 2, (a[1] + a[3]) / 2] as const;
  const cb = [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] as const;
  const off = [ca[0] - cb[0], ca[1] - cb[1]] as const;
  const dims = [Math.abs(a[2] - a[0]) + Math.abs(b[2] - b[0]), Math.abs(a[3] - a[1]) + Math.abs(b[3] - b[1])];
  const norm = Math.hypot(off[0], off[1]) || 1;
  const rev = off.map((o, i) => Math.max(Math.abs(o) - POSITION_THRESHOLD * (dims[i] as number), 0) * Math.sign(o));
  return [(rev[0] as number) / norm, (rev[1] as number) / norm];
}

/** Throw a UserError if a record names a class, colour or relation ShapeWorld cannot judge. */
export function validateSpec(spec: PromptSpec): void {
  const checkClass = (c: unknown): void => {
    if (typeof c !== 'string' || !isShape(c)) {
      throw new UserError(`ShapeWorld cannot judge class '${String(c)}' (classes: ${SHAPES.join(', ')})`);
    }
  };
  if (!Array.isArray(spec.include)) throw new UserError('prompt record has no include list');
  spec.include.forEach((req, i) => {
    checkClass(req.class);
    if (!Number.isInteger(req.count) || req.count < 1) {
      throw new UserError(`include clause ${i} (${req.class}) has an invalid count ${String(req.count)}`);
    }
    if (req.color !== undefined && !isColor(req.color)) {
      throw new UserError(`ShapeWorld cannot judge color '${req.color}' (colors: ${COLORS.join(', ')})`);
    }
    if (req.position !== undefined) {
      const [rel, idx] = req.position;
      if (!(RELATIONS as readonly string[]).includes(rel)) {
        throw new UserError(`unknown relation '${rel}' (relations: ${RELATIONS.join(', ')})`);
      }
      if (!Number.isInteger(idx) || idx < 0 || idx >= i) {
        throw new UserError(`include clause ${i} refers to clause ${idx}, which does not precede it`);
      }
    }
  });
  for (const req of spec.exclude ?? []) checkClass(req.class);
}

/** Detections ranked as GenEval ranks a detector's boxes: most confident first (ties by position). */
export function rankDetections(dets: readonly Detection[]): Detection[] {
  return dets.slice().sort((a, b) => b.score - a.score || a.cy - b.cy || a.cx - b.cx);
}

/**
 * GenEval's `evaluate`: include clauses are ANDed, exclude clauses ORed. An include clause needs ≥ count
 * detections of its class; with a colour, ≥ count of them must have that colour (ShapeWorld judges colour per
 * object; GenEval's CLIP colour check looks at the top-`count` boxes, which here are the best-ranked boxes of that
 * colour). A position clause compares every selected object with every object of the clause it refers to. An
 * exclude clause fails when ≥ count detections of its class exist.
 */
export function judge(detections: readonly Detection[], spec: PromptSpec): Verdict {
  validateSpec(spec);
  const byClass = new Map<string, Detection[]>();
  for (const d of rankDetections(detections)) {
    const list = byClass.get(d.shape) ?? [];
    list.push(d);
    byClass.set(d.shape, list);
  }
  const reasons: string[] = [];
  const matched: Array<Detection[] | null> = [];
  let satisfied = 0;
  for (const req of spec.include) {
    const all = byClass.get(req.class) ?? [];
    let ok = true;
    let found: Detection[] = [];
    if (all.length < req.count) {
      ok = false;
      reasons.push(`expected ${req.class}>=${req.count}, found ${all.length}`);
    } else if (req.color !== undefined) {
      const colored = all.filter((d) => d.color === req.color);
      if (colored.length < req.count) {
        ok = false;
        const tally = COLORS.filter((c) => all.some((d) => d.color === c))
          .map((c) => `${all.filter((d) => d.color === c).length} ${c}`)
          .join(', ');
        reasons.push(`expected ${req.color} ${req.class}>=${req.count}, found ${colored.length} ${req.color}; and ${tally}`);
      } else {
        found = colored.slice(0, req.count);
      }
    } else {
      found = all.slice(0, req.count);
    }
    if (ok && req.position !== undefined) {
      const [rel, target] = req.position;
      const group = matched[target];
      if (!group) {
        ok = false;
        reasons.push(`no target for ${req.class} to be ${rel}`);
      } else {
        outer: for (const obj of found) {
          for (const t of group) {
            const rels = relativePosition(obj.box, t.box);
            if (!rels.has(rel)) {
              ok = false;
              reasons.push(`expected ${req.class} ${rel} target, found ${[...rels].join(' and ')} target`);
              break outer;
            }
          }
        }
      }
    }
    matched.push(ok ? found : null);
    if (ok) satisfied++;
  }
  for (const req of spec.exclude ?? []) {
    const n = (byClass.get(req.class) ?? []).length;
    if (n >= req.count) reasons.push(`expected ${req.class}<${req.count}, found ${n}`);
    else satisfied++;
  }
  const clauses = spec.include.length + (spec.exclude?.length ?? 0);
  return { correct: reasons.length === 0, reason: reasons.join('\n'), satisfied, clauses };
}

export interface CategoryScore {
  correct: number;
  total: number;
  accuracy: number;
}
export interface Scoreboard {
  /** per tag (GenEval's six first, in GenEval's order, then any other tag met); tags with no results are left out */
  categories: Record<string, CategoryScore>;
  /** GenEval's overall score: the mean of the per-category accuracies */
  overall: number;
  images: number;
}

/** GenEval's summary: accuracy per tag and their mean. */
export function scoreByCategory(results: ReadonlyArray<{ tag: string; correct: boolean }>): Scoreboard {
  const tally = new Map<string, CategoryScore>();
  for (const t of TAGS) tally.set(t, { correct: 0, total: 0, accuracy: 0 });
  for (const r of results) {
    let slot = tally.get(r.tag);
    if (!slot) tally.set(r.tag, (slot = { correct: 0, total: 0, accuracy: 0 }));
    slot.total++;
    if (r.correct) slot.correct++;
  }
  const categories: Record<string, CategoryScore> = {};
  for (const [tag, s] of tally) {
    if (s.total === 0) continue;
    s.accuracy = s.correct / s.total;
    categories[tag] = s;
  }
  const all = Object.values(categories);
  const overall = all.length ? all.reduce((a, s) => a + s.accuracy, 0) / all.length : 0;
  return { categories, overall, images: results.length };
}
