/** Small pure helpers for the HTML report: escaping, number and time formatting, image sniffing. */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escape text for HTML element content and quoted attribute values. */
export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (ch) => ESCAPES[ch]!);
}

/** A verifier score, short: at most 3 decimals, trailing zeros dropped. */
export function formatScore(score: number | null | undefined): string {
  if (score === null || score === undefined) return '—';
  if (!Number.isFinite(score)) return String(score);
  if (Number.isInteger(score)) return String(score);
  const digits = Math.abs(score) >= 100 ? 1 : 3;
  return score.toFixed(digits).replace(/0+$/, '').replace(/\.$/, '');
}

/** Milliseconds as a human duration: `850 ms`, `12.3 s`, `4 min 05 s`, `1 h 02 min`. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const totalS = Math.round(s);
  const m = Math.floor(totalS / 60);
  if (m < 60) return `${m} min ${String(totalS % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

export interface ImageInfo {
  mime: 'image/png' | 'image/jpeg' | 'image/webp' | 'image/gif';
  width?: number;
  height?: number;
}

/** Recognise the image format from its first bytes (and, for PNG, read the size from IHDR). */
export function sniffImage(bytes: Uint8Array): ImageInfo | null {
  const b = bytes;
  if (b.length >= 24 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    return { mime: 'image/png', width: dv.getUint32(16), height: dv.getUint32(20) };
  }
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return { mime: 'image/png' };
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return { mime: 'image/jpeg' };
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return { mime: 'image/webp' };
  if (b.length >= 6 && ascii(b, 0, 3) === 'GIF') return { mime: 'image/gif' };
  return null;
}

function ascii(b: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...b.subarray(start, end));
}

export function dataUri(bytes: Uint8Array, mime: string): string {
  return `data:${mime};base64,${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')}`;
}
