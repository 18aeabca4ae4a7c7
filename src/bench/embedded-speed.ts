/**
 * Speed of the embedded models: a 32-image `noise` run of one prompt (generation + verification, in memory),
 * for a few sampler step counts. Target: ≤ 5 s wall on 2 cores.
 *
 *   npm run build && node dist/bench/embedded-speed.js [--steps 8,12,20] [--images 32] [--repeat 3]
 */
import { createEmbeddedBackend } from '../backends/embedded/backend.js';
import type { RoleSet } from '../core/roles.js';
import { search } from '../search/loop.js';
import { MemoryIO } from '../search/io.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const stepsList = arg('steps', '8,12,20').split(',').map(Number);
  const images = Number(arg('images', '32'));
  const repeat = Number(arg('repeat', '3'));
  const prompt = arg('prompt', 'a photo of a red circle left of a blue square');
  console.log(`embedded noise run: ${images} images of "${prompt}", best of ${repeat}`);
  for (const steps of stepsList) {
    const roles = (await createEmbeddedBackend({ steps })) as RoleSet;
    const walls: number[] = [];
    for (let r = 0; r < repeat; r++) {
      const t0 = performance.now();
      const out = await search({
        prompt,
        params: { strategy: 'noise', samples: images, width: 1, depth: 0, seed: r, chainHead: 'latest' },
        roles,
        io: new MemoryIO(),
      });
      walls.push(performance.now() - t0);
      if (out.imagesGenerated !== images) throw new Error('short run');
    }
    const best = Math.min(...walls);
    const median = [...walls].sort((a, b) => a - b)[Math.floor(walls.length / 2)]!;
    console.log(`steps ${String(steps).padStart(2)}: ${(best / 1000).toFixed(2)} s best, ${(median / 1000).toFixed(2)} s median`);
  }
}

await main();
