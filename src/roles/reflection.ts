import { ModelOutputError } from '../core/errors.js';
import type { Reflection } from '../core/types.js';

/** A line that says there is nothing to change. */
const NOTHING = /^(none|n\/a|nothing(\s+to\s+(change|fix))?|no\s+(changes?|edits?|issues?)(\s+needed)?)\.?$/i;

/** A section heading such as `1. Prompt Following:` or `Edits:` (no instruction of its own). */
const HEADING = /^(?:\d+[.)]\s*)?[A-Za-z][A-Za-z /&-]{0,40}:$/;

/**
 * A reflector's free text → one instruction per item. Bullets (`-`, `*`, `•`) and numbering are removed, section
 * headings (the official Reflection-Generator writes `1. Prompt Following:` before its hyphen list) are skipped, and
 * "None" lines mean no edit. `text` is the instructions, one per line: what the corrector is conditioned on.
 * An empty answer is malformed (ModelOutputError); an answer that only says "None" is an empty reflection.
 */
export function parseReflection(raw: string): Reflection {
  if (!raw.trim()) throw new ModelOutputError('the answer is empty');
  const items: string[] = [];
  for (let line of raw.split(/\r?\n/)) {
    line = line.trim();
    if (!line || /^```/.test(line)) continue;
    // a heading with its first instruction on the same line: "1. Prompt Following: - Add a dog"
    const inline = /^(?:\d+[.)]\s*)?[A-Za-z][A-Za-z /&-]{0,40}:\s+-\s*(.+)$/.exec(line);
    if (inline) line = inline[1]!;
    else if (HEADING.test(line)) continue;
    line = line.replace(/^(?:[-*•]\s*|\d+[.)]\s+)/, '').trim();
    line = line.replace(/^\*\*(.+)\*\*$/, '$1').trim();
    if (!line || NOTHING.test(line)) continue;
    items.push(line);
  }
  return { text: items.join('\n'), items };
}

/** The JSON form of a reflection (`{"instructions": [...]}`), for services with JSON output. */
export function reflectionFromJson(json: unknown): Reflection {
  const list = (json as { instructions?: unknown } | null)?.instructions;
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) {
    throw new ModelOutputError('expected {"instructions": [string, ...]}');
  }
  const items = list.map((s) => s.trim()).filter((s) => s && !NOTHING.test(s));
  return { text: items.join('\n'), items };
}

/** A refiner's answer → the prompt: one line, without a label or quotes. */
export function parseRefinedPrompt(raw: string): string {
  const lines = raw
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !/^```/.test(l));
  let line = lines[0] ?? '';
  line = line.replace(/^(?:refined|new|improved)?\s*prompt\s*:\s*/i, '').trim();
  line = line.replace(/^["'“”](.*)["'“”]$/s, '$1').trim();
  if (!line) throw new ModelOutputError('the answer holds no prompt');
  return line;
}
