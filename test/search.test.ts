import { describe, expect, it } from 'vitest';
import { search, type SearchInput } from '../src/search/loop.js';
import { MemoryIO } from '../src/search/io.js';
import { makePlan, planned } from '../src/search/plan.js';
import { bestOf, rank } from '../src/search/select.js';
import type { Candidate, SearchParams } from '../src/core/types.js';
import { createBackend, qualityOf } from './fixtures/fake-backend.mjs';

const params = (p: Partial<SearchParams>): SearchParams => ({
  strategy: 'reflection',
  samples: 8,
  width: 2,
  depth: 3,
  seed: 7,
  chainHead: 'latest',
  ...p,
});

async function run(p: Partial<SearchParams>, opts: Parameters<typeof createBackend>[0] = {}, extra: Partial<SearchInput> = {}) {
  const backend = createBackend(opts);
  const io = new MemoryIO();
  const result = await search({ prompt: 'a red circle', params: params(p), roles: backend, io, ...extra });
  return { result, io, backend };
}

const score = (c: Candidate): number => c.evaluation!.score;
/** The expected choice, said plainly: the highest score, and of equal ones the first in plan order. */
const firstWithTopScore = (cs: Candidate[]): Candidate => cs.find((c) => score(c) === Math.max(...cs.map(score)))!;

describe('ranking', () => {
  const cand = (id: string, s?: number, verifyError?: string): Candidate => ({
    id,
    round: 0,
    chain: null,
    seed: 0,
    parentId: null,
    prompt: 'p',
    origin: 'generate',
    ...(s !== undefined ? { evaluation: { score: s } } : {}),
    ...(verifyError ? { verifyError } : {}),
  });
  it('orders by score, highest first; ties keep the given order; failed or missing verifications and NaN last', () => {
    const cs = [cand('a', 0.2), cand('b', undefined, 'refused'), cand('c', 0.9), cand('d', 0.2), cand('e'), cand('f', NaN), cand('g', 0.95), cand('h', -1)];
    expect(rank(cs).map((c) => c.id)).toEqual(['g', 'c', 'a', 'd', 'h', 'b', 'e', 'f']);
    expect(cs.map((c) => c.id)).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']); // not sorted in place
  });
  it('bestOf is the first of that order, and refuses an empty list', () => {
    expect(bestOf([cand('x', 0.5), cand('y', 0.5)]).id).toBe('x');
    expect(bestOf([cand('x', undefined, 'refused'), cand('y', 0.1)]).id).toBe('y');
    expect(bestOf([cand('x', undefined, 'refused')]).id).toBe('x');
    expect(() => bestOf([])).toThrow(/no candidates/);
  });
});

describe('plan and budget', () => {
  it('budget is samples + width × depth for every strategy', () => {
    for (const strategy of ['noise', 'noise+prompt', 'reflection'] as const) {
      expect(makePlan(params({ strategy, samples: 8, width: 2, depth: 3 })).budget).toBe(14);
    }
  });
  it('noise spends the whole budget on the pool', () => {
    const plan = makePlan(params({ strategy: 'noise', samples: 4, width: 2, depth: 2 }));
    expect(plan.pool).toBe(8);
    expect(plan.depth).toBe(0);
  });
  it('a cap cuts the pool first, then rounds in order', () => {
    const plan = makePlan(params({ samples: 4, width: 2, depth: 3, maxImages: 7 }));
    expect(plan.budget).toBe(7);
    expect(plan.pool).toBe(4);
    const grid = [1, 2, 3].map((r) => [0, 1].map((c) => planned(plan, r, c)));
    expect(grid).toEqual([
      [true, true],
      [true, false],
      [false, false],
    ]);
    expect(makePlan(params({ samples: 4, width: 2, depth: 3, maxImages: 3 }))).toMatchObject({ pool: 3, budget: 3 });
  });
  it('plans a depth of 10^6 by counting, not listing, its steps', () => {
    const plan = makePlan(params({ samples: 4, width: 2, depth: 1_000_000 }));
    expect(JSON.stringify(plan).length).toBeLessThan(200);
    expect(plan.budget).toBe(2_000_004);
    expect(planned(plan, 1_000_000, 1)).toBe(true);
    expect(planned(plan, 1_000_001, 0)).toBe(false);
  });
  it('width never exceeds the pool', () => {
    expect(makePlan(params({ samples: 2, width: 5, depth: 1 })).width).toBe(2);
  });
});

describe('strategies', () => {
  it('noise is best-of-N over the whole budget', async () => {
    const { result, io, backend } = await run({ strategy: 'noise', samples: 6, width: 2, depth: 1 });
    expect(result.imagesGenerated).toBe(8);
    expect(backend.stats.calls).toEqual({ generate: 8, verify: 8 });
    const qs = await Promise.all([...io.images.values()].map(qualityOf));
    const best = result.candidates.find((c) => c.id === result.bestId)!;
    expect(await qualityOf(io.images.get(best.id)!)).toBe(Math.max(...qs));
  });

  it('noise+prompt regenerates from fresh seeds with each chain’s refined prompt', async () => {
    const { result, backend } = await run({ strategy: 'noise+prompt', samples: 4, width: 2, depth: 2 });
    expect(result.imagesGenerated).toBe(8);
    expect(backend.stats.calls.correct).toBeUndefined();
    expect(backend.stats.calls.reflect).toBeUndefined();
    const later = result.candidates.filter((c) => c.round > 0);
    expect(later).toHaveLength(4);
    for (const c of later) {
      expect(c.origin).toBe('generate');
      const parent = result.candidates.find((p) => p.id === c.parentId)!;
      expect(c.prompt).toBe(parent.refinedPrompt);
    }
  });

  it('reflection keeps every chain’s full history', async () => {
    const { result, backend } = await run({ strategy: 'reflection', samples: 6, width: 2, depth: 3 });
    expect(result.imagesGenerated).toBe(12);
    expect(backend.stats.calls).toMatchObject({ generate: 6, correct: 6, reflect: 6, refine: 6, verify: 12 });
    expect(result.chains).toHaveLength(2);
    const byId = new Map(result.candidates.map((c) => [c.id, c]));
    // chain heads are the top-2 of the pool, best first
    const pool = result.candidates.filter((c) => c.round === 0);
    const poolScores = pool.map(score).sort((a, b) => b - a);
    expect(result.chains.map((ch) => score(byId.get(ch.ids[0]!)!))).toEqual(poolScores.slice(0, 2));
    for (const chain of result.chains) {
      expect(chain.ids).toHaveLength(4);
      chain.ids.slice(1).forEach((id, i) => {
        const c = byId.get(id)!;
        expect(c.round).toBe(i + 1);
        expect(c.chain).toBe(chain.chain);
        expect(c.parentId).toBe(chain.ids[i]); // chainHead latest: each image corrects the one before
        expect(c.origin).toBe('correct');
        expect(c.reflection).toEqual(byId.get(c.parentId!)!.reflectionOut);
        expect(c.prompt).toBe(byId.get(c.parentId!)!.refinedPrompt);
      });
      expect(chain.bestId).toBe(firstWithTopScore(chain.ids.map((id) => byId.get(id)!)).id);
    }
    expect(result.bestId).toBe(firstWithTopScore(result.candidates).id);
  });

  it('chainHead best keeps the better of old and new as the next parent', async () => {
    const { result } = await run({ strategy: 'reflection', samples: 4, width: 1, depth: 4, chainHead: 'best' });
    const byId = new Map(result.candidates.map((c) => [c.id, c]));
    const chain = result.chains[0]!.ids.map((id) => byId.get(id)!);
    let head = chain[0]!;
    for (const c of chain.slice(1)) {
      expect(c.parentId).toBe(head.id);
      if (c.evaluation!.score > head.evaluation!.score) head = c;
    }
  });

  it('never exceeds --max-images', async () => {
    const { result, backend } = await run({ strategy: 'reflection', samples: 4, width: 2, depth: 5, maxImages: 7 });
    expect(result.imagesGenerated).toBe(7);
    expect(backend.stats.calls.generate! + backend.stats.calls.correct!).toBe(7);
  });

  it('a failed verification ranks last and the run goes on', async () => {
    const { result } = await run({ strategy: 'noise', samples: 12, width: 1, depth: 0 }, { failVerifyAbove: 100 });
    const failed = result.candidates.filter((c) => c.verifyError);
    expect(failed.length).toBeGreaterThan(0);
    const best = result.candidates.find((c) => c.id === result.bestId)!;
    expect(best.verifyError).toBeUndefined();
    expect(best.id).toBe(firstWithTopScore(result.candidates.filter((c) => !c.verifyError)).id);
  });

  it('says which role a strategy is missing', async () => {
    const b = createBackend();
    await expect(
      search({ prompt: 'x', params: params({}), roles: { generator: b.generator, verifier: b.verifier }, io: new MemoryIO() }),
    ).rejects.toThrow(/needs a reflector/);
  });
});

describe('concurrency and alignment', () => {
  it('every score, reflection and refined prompt stays bound to its own image under random completion order', async () => {
    const runs = await Promise.all(
      [0, 1, 2].map(() => run({ samples: 16, width: 4, depth: 3 }, { latencyMs: 1, jitterMs: 25, concurrency: 8 })),
    );
    for (const { result, io } of runs) {
      for (const c of result.candidates) {
        const q = await qualityOf(io.images.get(c.id)!);
        expect(c.evaluation!.score).toBe(q / 255);
        if (c.reflectionOut) expect(c.reflectionOut.text).toContain(`q=${q}`);
        if (c.refinedPrompt) expect(c.refinedPrompt.endsWith(`+q${q}`)).toBe(true);
      }
      // each event names the candidate whose image it read
      for (const e of io.events.filter((e) => e.role === 'verifier')) {
        const q = await qualityOf(io.images.get(e.candidateId)!);
        expect(e.evaluation!.score).toBe(q / 255);
      }
    }
    const ids = runs.map((r) => r.result.candidates.map((c: Candidate) => c.id));
    expect(ids[1]).toEqual(ids[0]);
    expect(ids[2]).toEqual(ids[0]);
    expect(new Set(runs.map((r) => r.result.bestId)).size).toBe(1);
  });

  it('respects the backend’s concurrency limit', async () => {
    const { backend } = await run({ strategy: 'noise', samples: 24, width: 1, depth: 0 }, { latencyMs: 5, concurrency: 3 });
    expect(backend.stats.maxInFlight).toBe(3);
  });

  it('same seed ⇒ same ids and choice; another seed ⇒ other images', async () => {
    const a = await run({ seed: 3 });
    const b = await run({ seed: 3 });
    const c = await run({ seed: 4 });
    expect(b.result.candidates.map((x) => x.id)).toEqual(a.result.candidates.map((x) => x.id));
    expect(b.result.bestId).toBe(a.result.bestId);
    for (const [id, img] of a.io.images) expect(Buffer.from(b.io.images.get(id)!.png).equals(Buffer.from(img.png))).toBe(true);
    expect(c.result.candidates.map((x) => x.id)).not.toEqual(a.result.candidates.map((x) => x.id));
  });

  it('replays finished calls instead of redoing them', async () => {
    const first = await run({ samples: 6, width: 2, depth: 2 });
    const io = first.io;
    // forget the last round, as if the process died there
    const keep = io.events.filter((e) => !e.candidateId.startsWith('r2-'));
    io.events.splice(0, io.events.length, ...keep);
    const backend = createBackend();
    const again = await search({ prompt: 'a red circle', params: params({ samples: 6, width: 2, depth: 2 }), roles: backend, io });
    expect(backend.stats.calls).toEqual({ correct: 2, verify: 2 });
    expect(again.bestId).toBe(first.result.bestId);
    expect(again.candidates.map((c) => c.id)).toEqual(first.result.candidates.map((c) => c.id));
  });
});

describe('failed calls and resume', () => {
  it('a resume retries a failed pool image; chains that now start elsewhere are made again, equal to a clean run', async () => {
    const p = params({ samples: 6, width: 2, depth: 2 });
    const clean = await run({ samples: 6, width: 2, depth: 2 });
    const best = clean.result.candidates.find((c) => c.round === 0 && c.chain === 0)!; // the clean run's first head
    const io = new MemoryIO();
    const backend = createBackend();
    let down = true;
    const roles = {
      ...backend,
      generator: {
        ...backend.generator,
        generate: (req: Parameters<typeof backend.generator.generate>[0], o?: Parameters<typeof backend.generator.generate>[1]) =>
          down && req.seed === best.seed ? Promise.reject(new Error('503 busy')) : backend.generator.generate(req, o),
      },
    };
    const first = await search({ prompt: 'a red circle', params: p, roles, io });
    expect(first.failures.map((e) => e.key)).toEqual([`generate:${best.id}`]);
    expect(first.candidates.some((c) => c.id === best.id)).toBe(false);
    down = false;
    const again = await search({ prompt: 'a red circle', params: p, roles, io });
    expect(again.failures).toEqual([]);
    expect(again.candidates.map((c) => c.id)).toEqual(clean.result.candidates.map((c) => c.id));
    expect(again.bestId).toBe(clean.result.bestId);
    for (const c of again.candidates) {
      expect(c.parentId).toBe(clean.result.candidates.find((x) => x.id === c.id)!.parentId);
      expect(c.evaluation).toEqual(clean.result.candidates.find((x) => x.id === c.id)!.evaluation);
      expect(Buffer.from(io.images.get(c.id)!.png).equals(Buffer.from(clean.io.images.get(c.id)!.png))).toBe(true);
    }
  });

  it('a role whose first calls all fail the same way stops the search (RoleFailing), without spending the budget', async () => {
    const backend = createBackend();
    const roles = { ...backend, verifier: { ...backend.verifier, verify: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:9')) } };
    const io = new MemoryIO();
    await expect(search({ prompt: 'a red circle', params: params({ strategy: 'noise', samples: 32, width: 1, depth: 0 }), roles, io })).rejects.toThrow(
      /every verifier call failed the same way \(3 of 3\): connect ECONNREFUSED/,
    );
    expect(io.events.filter((e) => e.role === 'verifier' && e.error).length).toBeLessThan(32);
  });
});

describe('time per role', () => {
  it('busy time is the union of a role’s calls in flight: overlapping calls count once, never more than wall time', async () => {
    const started = performance.now();
    const { result } = await run({ strategy: 'noise', samples: 16, width: 1, depth: 0 }, { latencyMs: 30, concurrency: 8 });
    const wall = performance.now() - started;
    expect(result.timePerRole.generator!).toBeGreaterThan(16 * 25); // summed: every call's own time
    expect(result.busyPerRole.generator!).toBeLessThanOrEqual(wall);
    expect(result.busyPerRole.generator!).toBeLessThan(result.timePerRole.generator! / 2); // 8 at a time
  });
});

describe('stop at a verifier score', () => {
  it('makes the pool in waves and stops after the first wave holding a passing image, whatever the call order', async () => {
    const full = await run({ strategy: 'noise', samples: 32, width: 1, depth: 0, seed: 11 });
    const threshold = 0.6;
    const firstPass = full.result.candidates.findIndex((c) => c.evaluation!.score >= threshold);
    expect(firstPass).toBeGreaterThanOrEqual(0);
    const runs = await Promise.all(
      [0, 1, 2].map(() => run({ strategy: 'noise', samples: 32, width: 1, depth: 0, seed: 11, stopAt: threshold, wave: 4 }, { latencyMs: 1, jitterMs: 20, concurrency: 8 })),
    );
    for (const { result } of runs) {
      expect(result.imagesGenerated).toBe(Math.min(32, (Math.floor(firstPass / 4) + 1) * 4));
      expect(result.stoppedAt).toBe(full.result.candidates[firstPass]!.id);
      expect(result.chains).toEqual([]);
    }
    expect(new Set(runs.map((r) => r.result.bestId)).size).toBe(1);
  });

  it('chains go round by round and stop in the round whose image passes; the budget stays the cap', async () => {
    const base = { strategy: 'reflection' as const, samples: 4, width: 2, depth: 6, seed: 5 };
    const full = await run(base);
    const poolBest = Math.max(...full.result.candidates.filter((c) => c.round === 0).map((c) => c.evaluation!.score));
    const later = full.result.candidates.filter((c) => c.round > 0 && c.evaluation!.score > poolBest);
    expect(later.length).toBeGreaterThan(0);
    const threshold = later[0]!.evaluation!.score;
    const firstRound = Math.min(...full.result.candidates.filter((c) => c.round > 0 && c.evaluation!.score >= threshold).map((c) => c.round));
    const { result } = await run({ ...base, stopAt: threshold }, { latencyMs: 1, jitterMs: 15 });
    expect(Math.max(...result.candidates.map((c) => c.round))).toBe(firstRound);
    expect(result.imagesGenerated).toBe(4 + 2 * firstRound);
    expect(result.candidates.find((c) => c.id === result.stoppedAt)!.evaluation!.score).toBeGreaterThanOrEqual(threshold);
    const never = await run({ ...base, stopAt: 99 });
    expect(never.result.imagesGenerated).toBe(never.result.budget);
    expect(never.result.stoppedAt).toBeUndefined();
  });
});

describe('noise keeps no chains', () => {
  it('every image stays a pool image and the best is over all of them', async () => {
    const { result } = await run({ strategy: 'noise', samples: 5, width: 2, depth: 1 });
    expect(result.chains).toEqual([]);
    expect(result.candidates.every((c) => c.chain === null && c.round === 0)).toBe(true);
    expect(result.bestId).toBe(firstWithTopScore(result.candidates).id);
  });
});
