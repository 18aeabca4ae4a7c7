import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UserError, errorMessage } from '../core/errors.js';
import { promptRecordSchema, type PromptRecord } from '../core/prompt-record.js';
import type { PromptMeta } from '../core/types.js';

// the record's schema is core's (the batch record in store/ keeps records); re-exported beside the readers
export { promptRecordSchema, type PromptRecord } from '../core/prompt-record.js';

/** Read a GenEval-metadata JSONL file. A bad line → UserError naming the file and line number. */
export function loadPromptFile(file: string): PromptRecord[] {
  const records = jsonLines(file, readPromptText(file)).map(({ raw, line }) => parseLine(promptRecordSchema, raw, file, line));
  if (records.length === 0) throw new UserError(`${file}: no prompts`);
  return records;
}

/** A prompt of a free-form set (DrawBench- or PartiPrompts-style): its category is its tag, `all` without one. */
export interface FreeFormPrompt {
  prompt: string;
  tag: string;
  category?: string;
}

const freeFormSchema = z
  .object({
    prompt: z.string().refine((s) => s.trim().length > 0, 'prompt is empty'),
    category: z.string().min(1).optional(),
  })
  .passthrough();

/**
 * An eval's prompt list: GenEval metadata JSONL (records with `include`), free-form JSONL (`{"prompt", "category"?}`
 * a line) or plain text (one prompt a line). A file whose first line starts with `{` is JSONL; one file holds one
 * kind. A bad line → UserError naming the file and line number.
 */
export function loadPromptList(file: string): { kind: 'geneval'; records: PromptRecord[] } | { kind: 'free-form'; records: FreeFormPrompt[] } {
  const text = readPromptText(file);
  const lines = text.split('\n').map((l, i) => ({ text: l.trim(), line: i + 1 })).filter((l) => l.text !== '');
  if (lines.length === 0) throw new UserError(`${file}: no prompts`);
  if (!lines[0]!.text.startsWith('{')) return { kind: 'free-form', records: lines.map((l) => ({ prompt: l.text, tag: 'all' })) };
  const rows = jsonLines(file, text);
  const geneval = (raw: unknown) => typeof raw === 'object' && raw !== null && 'include' in raw;
  const first = geneval(rows[0]!.raw);
  const mixed = rows.find((r) => geneval(r.raw) !== first);
  if (mixed) throw new UserError(`${file}:${mixed.line}: mixes GenEval records (with "include") and free-form prompts; one kind a file`);
  if (first) return { kind: 'geneval', records: rows.map(({ raw, line }) => parseLine(promptRecordSchema, raw, file, line)) };
  return {
    kind: 'free-form',
    records: rows.map(({ raw, line }) => {
      const { category, ...rest } = parseLine(freeFormSchema, raw, file, line);
      return { ...rest, prompt: rest.prompt.trim(), tag: category ?? 'all', ...(category ? { category } : {}) };
    }),
  };
}

function readPromptText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read prompts ${file} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
  }
}

function jsonLines(file: string, text: string): Array<{ raw: unknown; line: number }> {
  const rows: Array<{ raw: unknown; line: number }> = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      rows.push({ raw: JSON.parse(line), line: i + 1 });
    } catch {
      throw new UserError(`${file}:${i + 1}: not valid JSON`);
    }
  });
  return rows;
}

function parseLine<T extends z.ZodTypeAny>(schema: T, raw: unknown, file: string, line: number): z.infer<T> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UserError(`${file}:${line}: ${issue.path.join('.') || 'record'}: ${issue.message}`);
  }
  return parsed.data;
}

export function metaOf(record: PromptRecord): PromptMeta {
  const { prompt: _prompt, ...meta } = record;
  return meta as PromptMeta;
}
