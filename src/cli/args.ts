import { InvalidArgumentError } from 'commander';
import { STRATEGIES, type Strategy } from '../core/types.js';

/** commander argument parsers: each rejects bad input with one clear line. */
export function positiveInt(value: string): number {
  if (!/^\s*\d+\s*$/.test(value) || Number(value) <= 0 || !Number.isSafeInteger(Number(value))) {
    throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  }
  return Number(value);
}

export function nonNegativeInt(value: string): number {
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new InvalidArgumentError(`expected a non-negative integer, got '${value}'`);
  }
  return Number(value);
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
