import { UserError } from '../core/errors.js';

/**
 * Earlier spellings of options every backend names the same way now: they are read as today's, so older config
 * files keep working. (`baseURL` was the openai backend's, `url` comfyui's, `imageSize` openai's and fal's.)
 */
export const RENAMED_OPTIONS: Readonly<Record<string, string>> = { baseURL: 'baseUrl', url: 'baseUrl', imageSize: 'size' };

/**
 * Typed access to a backend's options (as written in a config file), with one-line UserErrors that name the
 * backend and the option. `check()` refuses unknown options so a typo never passes silently. Every backend reads
 * its options through one.
 */
export class OptionReader {
  private readonly seen = new Set<string>();
  readonly options: Record<string, unknown>;

  constructor(
    readonly backend: string,
    options: Record<string, unknown>,
  ) {
    this.options = { ...options };
    for (const [old, now] of Object.entries(RENAMED_OPTIONS)) {
      if (options[old] === undefined) continue;
      if (options[now] !== undefined) throw new UserError(`${backend} backend: options '${old}' and '${now}' are one option ('${old}' is its old name); keep '${now}'`);
      this.options[now] = options[old];
      delete this.options[old];
    }
  }

  private fail(key: string, want: string): never {
    throw new UserError(`${this.backend} backend: option '${key}' must be ${want}, got ${JSON.stringify(this.options[key])}`);
  }

  has(key: string): boolean {
    this.seen.add(key);
    return this.options[key] !== undefined;
  }

  string(key: string): string | undefined;
  string(key: string, dflt: string): string;
  string(key: string, dflt?: string): string | undefined {
    this.seen.add(key);
    const v = this.options[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'string' || v.length === 0) this.fail(key, 'a non-empty string');
    return v;
  }

  number(key: string, dflt: number, min?: number, max?: number): number;
  number(key: string, dflt: undefined, min?: number, max?: number): number | undefined;
  number(key: string, dflt: number | undefined, min = -Infinity, max = Infinity): number | undefined {
    this.seen.add(key);
    const v = this.options[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) this.fail(key, `a number in [${min}, ${max}]`);
    return v;
  }

  int(key: string, dflt: number, min = 0): number {
    this.seen.add(key);
    const v = this.options[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(key, `an integer ≥ ${min}`);
    return v;
  }

  bool(key: string, dflt: boolean): boolean {
    this.seen.add(key);
    const v = this.options[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  oneOf<T extends string>(key: string, values: readonly T[], dflt: T): T {
    this.seen.add(key);
    const v = this.options[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'string' || !values.includes(v as T)) this.fail(key, `one of ${values.join(', ')}`);
    return v as T;
  }

  record(key: string): Record<string, unknown> | undefined {
    this.seen.add(key);
    const v = this.options[key];
    if (v === undefined) return undefined;
    if (!v || typeof v !== 'object' || Array.isArray(v)) this.fail(key, 'an object');
    return v as Record<string, unknown>;
  }

  /** Throws on any option no reader asked for. Call after reading every option. */
  check(): void {
    for (const k of Object.keys(this.options)) {
      if (!this.seen.has(k)) {
        throw new UserError(`${this.backend} backend: unknown option '${k}' (options: ${[...this.seen].sort().join(', ')})`);
      }
    }
  }
}
