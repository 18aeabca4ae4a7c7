import { z } from 'zod';
import type { ConfigFile, RoleSpec } from './schema.js';

/**
 * The configuration layout of the official ReflectionFlow scripts (tts/configs/*.json). Only the keys that mean
 * something outside a local diffusers pipeline are mapped; the rest (cache_dir, torch_dtype, model, …) are
 * accepted and ignored. See the README's "Official config files" table.
 */
export const officialSchema = z
  .object({
    pipeline_args: z
      .object({
        pretrained_model_name_or_path: z.string().optional(),
        height: z.number().int().positive().optional(),
        width: z.number().int().positive().optional(),
        guidance_scale: z.number().positive().optional(),
        num_inference_steps: z.number().int().positive().optional(),
        lora_path: z.string().optional(),
      })
      .passthrough(),
    verifier_args: z
      .object({
        name: z.string(),
        model_name: z.string().optional(),
        choice_of_metric: z.string().optional(),
        max_new_tokens: z.number().int().positive().optional(),
      })
      .passthrough(),
    refine_args: z
      .object({ name: z.string().optional(), max_new_tokens: z.number().int().positive().optional() })
      .passthrough()
      .optional(),
    search_args: z
      .object({
        search_method: z.string().optional(),
        search_branch: z.number().int().positive(),
        search_rounds: z.number().int().positive(),
      })
      .passthrough(),
    reflection_args: z
      .object({ run_reflection: z.boolean().optional(), name: z.string().optional() })
      .passthrough()
      .optional(),
    prompt_refiner_args: z.object({ run_refinement: z.boolean().optional() }).passthrough().optional(),
  })
  .passthrough();

export type OfficialConfig = z.infer<typeof officialSchema>;

export function isOfficialLayout(raw: unknown): boolean {
  return typeof raw === 'object' && raw !== null && ('search_args' in raw || 'pipeline_args' in raw);
}

/**
 * Map the official layout onto ours.
 * - search_branch → width and the initial pool; search_rounds → the pool plus rounds − 1 correction rounds, so the
 *   budget is search_branch × search_rounds images as in the paper (2 × 16 = 32).
 * - reflection_args.run_reflection → strategy `reflection`; else prompt_refiner_args.run_refinement →
 *   `noise+prompt`; else `noise`. run_refinement false under reflection means no prompt refiner.
 * - verifier_args.name `nvila` → a yes/no verifier; `openai` → a rubric verifier scored by choice_of_metric.
 * - pipeline_args height → size; guidance_scale, num_inference_steps, pretrained_model_name_or_path → generator
 *   options (guidance, steps, model); lora_path → corrector option lora.
 * Backends are named after the official ones (`openai`); the user picks the concrete service with `--backend` or
 * by editing roles, as the official names carry no endpoint.
 */
export function mapOfficial(o: OfficialConfig): ConfigFile {
  const p = o.pipeline_args;
  const reflection = o.reflection_args?.run_reflection ?? false;
  const refinement = o.prompt_refiner_args?.run_refinement ?? false;
  const strategy = reflection ? 'reflection' : refinement ? 'noise+prompt' : 'noise';
  const branch = o.search_args.search_branch;

  const generator: RoleSpec = {};
  if (p.pretrained_model_name_or_path) generator.model = p.pretrained_model_name_or_path;
  if (p.guidance_scale !== undefined) generator.guidance = p.guidance_scale;
  if (p.num_inference_steps !== undefined) generator.steps = p.num_inference_steps;

  const verifier: RoleSpec = {
    mode: o.verifier_args.name === 'nvila' ? 'yesno' : 'rubric',
  };
  if (o.verifier_args.model_name) verifier.model = o.verifier_args.model_name;
  if (o.verifier_args.choice_of_metric) verifier.metric = o.verifier_args.choice_of_metric;
  if (o.verifier_args.max_new_tokens) verifier.maxTokens = o.verifier_args.max_new_tokens;

  const roles: NonNullable<ConfigFile['roles']> = { generator, verifier };
  if (reflection) {
    roles.reflector = o.reflection_args?.name && o.reflection_args.name !== 'openai'
      ? { template: 'reflection-generator' }
      : {};
    roles.corrector = { ...generator, ...(p.lora_path ? { lora: p.lora_path } : {}) };
  }
  if (refinement) {
    roles.refiner = o.refine_args?.max_new_tokens ? { maxTokens: o.refine_args.max_new_tokens } : {};
  } else if (reflection) {
    roles.refiner = { enabled: false };
  }

  return {
    roles,
    search: {
      strategy,
      samples: branch,
      width: branch,
      depth: o.search_args.search_rounds - 1,
    },
    ...(p.height ? { size: p.height } : {}),
  };
}
