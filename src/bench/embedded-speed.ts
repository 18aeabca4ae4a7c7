/**
 * Speed of the embedded models: a one-prompt run (in memory) at a budget of 32 images, for a few sampler step
 * counts. `noise`: 32 samples, generation + verification, target ≤ 5 s wall on 2 cores. `reflection`: the full loop
 * as `eval` spends the budget (16 samples + 2 chains × 8 rounds of reflect, refine, correct, verify), target ≤ 10 s.
 *
 *   npm run build && node dist/bench/embedded-speed.js [--strategy noise|noise+prompt|reflection] [--steps 8,12,20]
 *       [--images 32] [--repeat 3]
 */
import { createEmbeddedBackend } from '../backends/embedded/backend.js';
import type { RoleSet } from '../core/roles.js';
import type { Strategy } from '../core/types.js';
import { paramsForBudget } from '../eval/budget.js';
import { search } from '../search/loop.js';
import { MemoryIO } from '../search/io.js';
import { arg, numberArg } from './flags.js';

async function main(): Promise<void> {
  const strategy = arg('strategy', 'noise') as Strategy;
  const stepsList = arg('steps', '8,12,20').split(',').map(Number);
  const images = numberArg('images', 32);
  const repeat = numberArg('repeat', 3);
  const prompt = arg('prompt', 'a photo of a red circle left of a blue square');
  console.log(`embedded ${strategy} run: budget ${images} images, "${prompt}", best of ${repeat}`);
  for (const steps of stepsList) {
    const roles = (await createEmbeddedBackend({ steps })) as RoleSet;
    const walls: number[] = [];
    let made = 0;
    for (let r = 0; r < repeat; r++) {
      const t0 = performance.now();
      const out = await search({ prompt, params: paramsForBudget(strategy, images, 2, r), roles, io: new MemoryIO() });
      walls.push(performance.now() - t0);
      made = out.imagesGenerated;
      if (strategy === 'noise' && made !== images) throw new Error('short run');
    }
    const best = Math.min(...walls);
    const median = [...walls].sort((a, b) => a - b)[Math.floor(walls.length / 2)]!;
    console.log(`steps ${String(steps).padStart(2)}: ${(best / 1000).toFixed(2)} s best, ${(median / 1000).toFixed(2)} s median (${made} images in the last run)`);
  }
}

await main();
