import { InvalidArgumentError } from 'commander';
import { STRATEGIES, type Strategy } from '../core/types.js';

/** commander argument parsers: each rejects bad input with one clear line. */
/** Digits, or an integer in exponent form (`1e6`). */
function integer(value: string, what: string): number {
  const v = value.trim();
  if (!/^(\d+|\d+(\.\d+)?e\d+)$/i.test(v) || !Number.isInteger(Number(v))) throw new InvalidArgumentError(`expected ${what}, got '${value}'`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`'${value}' is too large (at most ${Number.MAX_SAFE_INTEGER})`);
  return n;
}

export function positiveInt(value: string): number {
  const n = integer(value, 'a positive integer');
  if (n <= 0) throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  return n;
}

export function nonNegativeInt(value: string): number {
  return integer(value, 'a non-negative integer');
}

export function finiteNumber(value: string): number {
  const v = value.trim();
  if (v === '' || !Number.isFinite(Number(v))) throw new InvalidArgumentError(`expected a number, got '${value}'`);
  return Number(v);
}

export function numberList(value: string): number[] {
  return value.split(',').map((s) => finiteNumber(s));
}

export function strategy(value: string): Strategy {
  if (!(STRATEGIES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`unknown strategy '${value}' (choose ${STRATEGIES.join(', ')})`);
  }
  return value as Strategy;
}

export function intList(value: string): number[] {
  const parts = value.split(',').map((s) => s.trim());
  return parts.map((p) => positiveInt(p));
}

/** A Redis URL for `--queue`: redis://host:port (rediss:// for TLS), optionally with user, password and db. */
export function redisUrl(value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new InvalidArgumentError(`expected a Redis URL such as redis://127.0.0.1:6379, got '${value}'`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new InvalidArgumentError(`expected a redis:// or rediss:// URL, got '${value}'`);
  if (!u.hostname) throw new InvalidArgumentError(`the Redis URL '${value}' names no host`);
  if (u.pathname.length > 1 && !/^\/\d+$/.test(u.pathname)) throw new InvalidArgumentError(`the Redis URL's path is a database number (redis://host:port/0), got '${u.pathname}'`);
  return value;
}

export function port(value: string): number {
  if (!/^\s*\d+\s*$/.test(value) || Number(value) > 65535) throw new InvalidArgumentError(`expected a port from 0 to 65535, got '${value}'`);
  return Number(value);
}
