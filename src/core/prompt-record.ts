/**
 * A GenEval prompt record: one schema, which checks it (prompt files, queued jobs) and types it (the batch record
 * keeps it beside each prompt). Reading the files is config/prompts.ts's.
 */
import { z } from 'zod';

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
