import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UserError, errorMessage } from '../core/errors.js';
import type { PromptMeta } from '../core/types.js';

const clause = z
  .object({
    class: z.string().min(1),
    count: z.number().int().positive(),
    color: z.string().min(1).optional(),
    position: z.tuple([z.string().min(1), z.number().int().nonnegative()]).optional(),
  })
  .passthrough();

/** One record of GenEval's evaluation_metadata.jsonl (extra fields are kept). */
export const promptRecordSchema = z
  .object({
    tag: z.string().min(1),
    include: z.array(clause).min(1),
    exclude: z.array(clause.pick({ class: true, count: true }).passthrough()).optional(),
    prompt: z.string().refine((s) => s.trim().length > 0, 'prompt is empty'),
  })
  .passthrough();

export type PromptRecord = z.infer<typeof promptRecordSchema>;

/** Read a GenEval-metadata JSONL file. A bad line → UserError naming the file and line number. */
export function loadPromptFile(file: string): PromptRecord[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read prompts ${file} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
  }
  const records: PromptRecord[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      throw new UserError(`${file}:${i + 1}: not valid JSON`);
    }
    const parsed = promptRecordSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new UserError(`${file}:${i + 1}: ${issue.path.join('.') || 'record'}: ${issue.message}`);
    }
    records.push(parsed.data);
  });
  if (records.length === 0) throw new UserError(`${file}: no prompts`);
  return records;
}

export function metaOf(record: PromptRecord): PromptMeta {
  const { prompt: _prompt, ...meta } = record;
  return meta as PromptMeta;
}
