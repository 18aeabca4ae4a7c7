import { describe, expect, it } from 'vitest';
import { compositionalCheckPrompts, compositionalTrainPrompts, inCheckSet, specKey } from '../../src/shapeworld/compositional.js';
import { layoutText, planLayout, regionOf, sceneLayoutCaption } from '../../src/shapeworld/layout.js';
import { heldOutCombination, parsePrompt } from '../../src/shapeworld/prompts.js';
import { Rng } from '../../src/shapeworld/random.js';
import { judge, type Detection, type PromptSpec } from '../../src/shapeworld/rules.js';
import { sceneDetections, sceneForSpec } from '../../src/shapeworld/scene.js';
import { COMPOSITIONAL_TAGS } from '../../src/shapeworld/rules.js';

describe('layout wording', () => {
  it('names regions by thirds of the image', () => {
    expect(regionOf(0.1, 0.1)).toBe('top left');
    expect(regionOf(0.5, 0.5)).toBe('center');
    expect(regionOf(0.9, 0.5)).toBe('right');
    expect(regionOf(0.5, 0.95)).toBe('bottom');
  });

  it('writes placed, counted, coloured objects, and the parser reads the objects back', () => {
    const text = layoutText([
      { shape: 'circle', color: 'red', count: 1, region: 'top left' },
      { shape: 'square', count: 1, region: 'bottom right' },
      { shape: 'star', color: 'blue', count: 1, region: 'center' },
    ]);
    expect(text).toBe('a red circle at the top left, a square at the bottom right and a blue star in the center');
    expect(parsePrompt(text).include).toEqual([
      { class: 'circle', count: 1, color: 'red' },
      { class: 'square', count: 1 },
      { class: 'star', count: 1, color: 'blue' },
    ]);
    // "on the left of" is still a relation, "on the left" a place
    expect(parsePrompt('a circle on the left of a square').include[1]?.position).toEqual(['left of', 0]);
    expect(parsePrompt('a circle on the left and a square at the bottom right').include).toHaveLength(2);
  });

  it('captions a scene with where its objects stand', () => {
    const spec: PromptSpec = { include: [{ class: 'square', count: 1, color: 'blue' }, { class: 'circle', count: 1, color: 'red', position: ['left of', 0] }] };
    for (let seed = 0; seed < 20; seed++) {
      const scene = sceneForSpec(spec, seed, { distractorRate: 0 });
      const caption = sceneLayoutCaption(spec, scene, new Rng(seed));
      const circle = scene.find((o) => o.shape === 'circle')!;
      expect(caption).toContain(`red circle ${regionPhraseFor(circle.cx, circle.cy)}`);
      expect(parsePrompt(caption).include.map((c) => `${c.color} ${c.class}`).sort()).toEqual(['blue square', 'red circle']);
    }
  });

  it('plans layouts that satisfy relations and keep detected objects in place', () => {
    const prompts = ['a red circle above a yellow square', 'a star right of a cross', 'two circles left of a square', 'three stars'];
    for (const p of prompts) {
      const spec = parsePrompt(p);
      const items = planLayout(spec, []);
      const text = layoutText(items);
      // the plan's objects are the spec's, each region at most once per object
      expect(parsePrompt(text).include.reduce((n, c) => n + c.count, 0)).toBe(spec.include.reduce((n, c) => n + c.count, 0));
      // placing each object at its region's centre satisfies the prompt
      const centre = { 'top left': [1, 1], top: [3, 1], 'top right': [5, 1], left: [1, 3], center: [3, 3], right: [5, 3], 'bottom left': [1, 5], bottom: [3, 5], 'bottom right': [5, 5] } as const;
      const dets = items.flatMap((it) =>
        Array.from({ length: it.count }, () => {
          const [x, y] = centre[it.region!].map((v) => v / 6) as [number, number];
          return { shape: it.shape, color: it.color ?? 'red', cx: x, cy: y, r: 0.08, box: [x - 0.08, y - 0.08, x + 0.08, y + 0.08] as [number, number, number, number], score: 1 };
        }),
      );
      expect(judge(dets, spec).correct, `${p} → ${text}`).toBe(true);
    }
    // a detected object keeps its region when the prompt allows it
    const scene = sceneForSpec(parsePrompt('a red circle and a blue square'), 3, { distractorRate: 0 });
    const dets = sceneDetections(scene);
    const plan = planLayout(parsePrompt('a red circle and a blue square'), dets);
    const circle = dets.find((d) => d.shape === 'circle')!;
    expect(plan.find((i) => i.shape === 'circle')?.region).toBe(regionOf(circle.cx, circle.cy));
  });

  it('keeps a count beside other objects together in one place, and spreads a count alone', () => {
    expect(layoutText(planLayout(parsePrompt('two stars and a cross'), []))).toBe('two stars on the left and a cross on the right');
    expect(layoutText(planLayout(parsePrompt('three red stars'), []))).toBe('a red star on the left, a red star on the right and a red star at the top');
    // the group goes where its first detected member stands; the others follow it there
    const star: Detection = { shape: 'star', color: 'red', cx: 0.85, cy: 0.85, r: 0.08, box: [0.77, 0.77, 0.93, 0.93], score: 0.9 };
    const cross: Detection = { ...star, shape: 'cross', cx: 0.15, cy: 0.5, box: [0.07, 0.42, 0.23, 0.58] };
    expect(planLayout(parsePrompt('three stars and a cross'), [star, cross])).toEqual([
      { shape: 'star', count: 3, region: 'bottom right' },
      { shape: 'cross', count: 1, region: 'left' },
    ]);
  });
});

function regionPhraseFor(cx: number, cy: number): string {
  const r = regionOf(cx, cy);
  return r === 'center' ? 'in the center' : r === 'left' || r === 'right' ? `on the ${r}` : `at the ${r}`;
}

describe('the compositional check set', () => {
  it('has every kind, parses back to its spec, holds out no test combination, and is never trained on', () => {
    const check = compositionalCheckPrompts();
    expect(new Set(check.map((r) => r.tag))).toEqual(new Set(COMPOSITIONAL_TAGS));
    expect(new Set(check.map(specKey)).size).toBe(check.length);
    for (const r of check) {
      expect(specKey(parsePrompt(r.prompt))).toBe(specKey(r));
      expect(heldOutCombination(r)).toBeNull();
      expect(inCheckSet(r)).toBe(true);
    }
    const train = compositionalTrainPrompts(3000, 5);
    expect(train.some((r) => inCheckSet(r))).toBe(false);
    expect(new Set(train.map((r) => r.tag))).toEqual(new Set(COMPOSITIONAL_TAGS));
    for (const r of train.slice(0, 300)) expect(specKey(parsePrompt(r.prompt))).toBe(specKey(r));
    // the default draw is the generator data's (three objects rare); balanced gives each kind a quarter
    const share = (rs: typeof train, tag: string): number => rs.filter((r) => r.tag === tag).length / rs.length;
    expect(share(train, 'three_object')).toBeLessThan(0.1);
    const balanced = compositionalTrainPrompts(2000, 5, { balanced: true });
    for (const tag of COMPOSITIONAL_TAGS) expect(Math.abs(share(balanced, tag) - 0.25), tag).toBeLessThan(0.04);
    expect(balanced.some((r) => inCheckSet(r) || heldOutCombination(r) !== null)).toBe(false);
    // mirrored forms share a key
    expect(specKey(parsePrompt('a red circle right of a blue star'))).toBe(specKey(parsePrompt('a blue star left of a red circle')));
  });
});
