import { UserError } from '../../core/errors.js';

/**
 * Typed access to a backend's options (as written in a config file), with one-line UserErrors that name the
 * backend and the option. `check()` refuses unknown options so a typo never passes silently.
 */
export class OptionReader {
  private readonly seen = new Set<string>();

  constructor(
    readonly backend: string,
    readonly options: Record<string, unknown>,
  ) {}

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
