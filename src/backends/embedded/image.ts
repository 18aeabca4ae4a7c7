import sharp from 'sharp';
import { UserError, errorMessage } from '../../core/errors.js';
import type { Image } from '../../core/types.js';

/** CHW float32 in [−1, 1] → PNG. */
export async function tensorToPng(data: Float32Array, offset: number, size: number): Promise<Image> {
  const plane = size * size;
  const raw = Buffer.alloc(plane * 3);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      const v = (data[offset + c * plane + i]! + 1) * 127.5;
      raw[i * 3 + c] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
    }
  }
  const png = await sharp(raw, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer();
  return { png: new Uint8Array(png) };
}

/** PNG (any size) → CHW float32 in [−1, 1] at `size`×`size`, written at `offset`. */
export async function pngToTensor(image: Image, size: number, out: Float32Array, offset: number): Promise<void> {
  let raw: Buffer;
  try {
    raw = await sharp(Buffer.from(image.png))
      .removeAlpha()
      .resize(size, size, { fit: 'fill', kernel: 'lanczos3' })
      .raw()
      .toBuffer();
  } catch (err) {
    throw new UserError(`cannot decode image: ${errorMessage(err).split('\n')[0]}`);
  }
  const plane = size * size;
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[offset + c * plane + i] = raw[i * 3 + c]! / 127.5 - 1;
  }
}
