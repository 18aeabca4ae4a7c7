import sharp from 'sharp';
import type { Candidate } from '../../src/core/types.js';
import type { RunRecord } from '../../src/store/types.js';

export const EVIL = '<script>alert("pwned")</script>';

/** A tiny ShapeWorld-like PNG: a coloured disc (or square) on grey. */
export async function shapePng(size: number, color: [number, number, number], radius: number, square = false): Promise<Uint8Array> {
  const raw = Buffer.alloc(size * size * 3);
  const c = size / 2;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const inside = square ? Math.abs(x - c) < radius && Math.abs(y - c) < radius : (x - c) ** 2 + (y - c) ** 2 < radius ** 2;
      const px = inside ? color : ([200, 200, 200] as const);
      raw.set(px, (y * size + x) * 3);
    }
  }
  return new Uint8Array(await sharp(raw, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer());
}

const reflA = { text: 'Make the circle larger. Move it to the centre.', items: ['Make the circle larger', 'Move it to the centre'] };
const reflB = { text: 'Change the colour to pure red', items: ['Change the colour to pure red'] };
const reflC = { text: 'Add a blue square on the left', items: ['Add a blue square on the left', `Remove the ${EVIL}`] };
const reflD = { text: 'Sharpen the edges', items: ['Sharpen the edges'] };

const PROMPT = 'a red circle to the right of a blue square';

/** A reflection run: 4 pool images, width 2, depth 2 — chain 0 improves to the chosen image, chain 1 has a failed verification. */
export function sampleRun(): RunRecord {
  const candidates: Candidate[] = [
    { id: 'r0-i000-s11', round: 0, chain: 1, seed: 11, parentId: null, prompt: PROMPT, origin: 'generate', evaluation: { score: 0.61, label: 'yes' }, reflectionOut: reflC, refinedPrompt: 'a bright red circle right of a small blue square' },
    { id: 'r0-i001-s12', round: 0, chain: null, seed: 12, parentId: null, prompt: PROMPT, origin: 'generate', evaluation: { score: 0.31, label: 'no', raw: 'No: there is <img src=x onerror=alert(1)> only a square.' } },
    { id: 'r0-i002-s13', round: 0, chain: 0, seed: 13, parentId: null, prompt: PROMPT, origin: 'generate', evaluation: { score: 0.7, label: 'yes', raw: 'Yes, mostly.' }, reflectionOut: reflA, refinedPrompt: 'a large red circle, centred, right of a blue square' },
    { id: 'r0-i003-s14', round: 0, chain: null, seed: 14, parentId: null, prompt: PROMPT, origin: 'generate', evaluation: { score: 0.2, label: 'no' } },
    { id: 'r1-c0-s21', round: 1, chain: 0, seed: 21, parentId: 'r0-i002-s13', prompt: 'a large red circle, centred, right of a blue square', origin: 'correct', reflection: reflA, evaluation: { score: 0.82, label: 'yes' }, reflectionOut: reflB, refinedPrompt: `a large pure red circle ${EVIL}` },
    { id: 'r1-c1-s22', round: 1, chain: 1, seed: 22, parentId: 'r0-i000-s11', prompt: 'a bright red circle right of a small blue square', origin: 'correct', reflection: reflC, verifyError: 'verifier timed out after 60 s', reflectionOut: reflD, refinedPrompt: 'a bright red circle right of a small blue square' },
    { id: 'r2-c0-s31', round: 2, chain: 0, seed: 31, parentId: 'r1-c0-s21', prompt: `a large pure red circle ${EVIL}`, origin: 'correct', reflection: reflB, evaluation: { score: 0.93, label: 'yes' } },
    { id: 'r2-c1-s32', round: 2, chain: 1, seed: 32, parentId: 'r1-c1-s22', prompt: 'a bright red circle right of a small blue square', origin: 'correct', reflection: reflD, evaluation: { score: 0.78, aspects: { object: 8, colour: 7, 'spatial <relation>': 4 } } },
  ];
  return {
    version: 1,
    id: '20250101-120000-a-red-circle-ab12',
    prompt: PROMPT,
    meta: { tag: 'position' },
    params: { strategy: 'reflection', samples: 4, width: 2, depth: 2, seed: 7, chainHead: 'latest' },
    config: {},
    backends: { generator: 'shapeworld', verifier: 'fake-verifier', reflector: 'fake-reflector', refiner: 'fake-refiner', corrector: 'shapeworld-edit' },
    status: 'done',
    createdAt: '2025-01-01T12:00:00.000Z',
    updatedAt: '2025-01-01T12:00:42.000Z',
    result: {
      bestId: 'r2-c0-s31',
      bestScore: 0.93,
      bestPath: 'images/r2-c0-s31.png',
      chains: [
        { chain: 0, ids: ['r0-i002-s13', 'r1-c0-s21', 'r2-c0-s31'], bestId: 'r2-c0-s31' },
        { chain: 1, ids: ['r0-i000-s11', 'r1-c1-s22', 'r2-c1-s32'], bestId: 'r2-c1-s32' },
      ],
      imagesGenerated: 8,
      budget: 8,
      timePerRole: { generator: 1200, verifier: 8400, reflector: 5100, refiner: 2300, corrector: 3900 },
      wallMs: 12345,
    },
    candidates,
  };
}

export async function sampleImages(run: RunRecord): Promise<Map<string, Uint8Array>> {
  const palette: Record<string, [number, number, number]> = {
    'r0-i000-s11': [200, 60, 60],
    'r0-i001-s12': [60, 60, 200],
    'r0-i002-s13': [220, 40, 40],
    'r0-i003-s14': [60, 160, 60],
    'r1-c0-s21': [230, 30, 30],
    'r1-c1-s22': [210, 50, 50],
    'r2-c0-s31': [255, 0, 0],
    'r2-c1-s32': [220, 40, 40],
  };
  const images = new Map<string, Uint8Array>();
  for (const [i, c] of run.candidates.entries()) {
    images.set(c.id, await shapePng(i % 2 ? 32 : 64, palette[c.id] ?? [0, 0, 0], 6 + c.round * 4 + (i % 3), c.id === 'r0-i001-s12'));
  }
  return images;
}
