/** Rendering ShapeWorld scenes to anti-aliased PNGs (SVG rasterised by sharp). */
import sharp from 'sharp';
import type { Scene } from './scene.js';
import { BACKGROUND, PALETTE, rgbHex, shapeSvg } from './shapes.js';

/** The resolution the procedural models work at and the evaluator is validated at (pixels per side). */
export const MODEL_SIZE = 32;
/** The resolution for reports and people. */
export const DISPLAY_SIZE = 256;

const UNITS = 1000;

/** The scene as an SVG document of `size` × `size` pixels. */
export function sceneToSvg(scene: Scene, size: number = MODEL_SIZE): string {
  const parts = scene.map((o) => shapeSvg(o.shape, o.cx * UNITS, o.cy * UNITS, o.r * UNITS, rgbHex(PALETTE[o.color])));
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 ${UNITS} ${UNITS}">` +
    `<rect x="0" y="0" width="${UNITS}" height="${UNITS}" fill="${rgbHex(BACKGROUND)}"/>` +
    parts.join('') +
    `</svg>`
  );
}

/** The sizes the renderer makes (pixels per side). */
export const RENDER_SIZES = { min: 8, max: 4096 } as const;

/** Render a scene to PNG bytes (RGB, no alpha). Same scene and size ⇒ same bytes. */
export async function renderScene(scene: Scene, size: number = MODEL_SIZE): Promise<Uint8Array> {
  if (!Number.isInteger(size) || size < RENDER_SIZES.min || size > RENDER_SIZES.max) throw new RangeError(`render size ${size} out of range`);
  const buf = await sharp(Buffer.from(sceneToSvg(scene, size)))
    .removeAlpha()
    .png({ compressionLevel: 6, adaptiveFiltering: false })
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
