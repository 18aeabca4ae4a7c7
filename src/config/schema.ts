import { z } from 'zod';
import { searchParamsSchema } from '../core/params.js';

const positiveInt = z.number().int().positive();

/** One role's backend: which family serves it and the family's options (never secrets). */
export const roleSpecSchema = z
  .object({
    backend: z.string().min(1).optional(),
    concurrency: positiveInt.optional(),
    /** false turns an optional role off (e.g. no prompt refiner in a reflection run) */
    enabled: z.boolean().optional(),
  })
  .catchall(z.unknown());

/** The config file's `search`: every parameter optional (the strategy defaults from the backends, see resolveParams). */
export const searchSchema = searchParamsSchema.partial();

/** Our configuration file (JSON or YAML). */
export const configSchema = z
  .object({
    /** default backend of every role */
    backend: z.string().min(1).optional(),
    /** options given to every role's backend, under the role's own */
    options: z.record(z.string(), z.unknown()).optional(),
    roles: z
      .object({
        generator: roleSpecSchema.optional(),
        verifier: roleSpecSchema.optional(),
        reflector: roleSpecSchema.optional(),
        refiner: roleSpecSchema.optional(),
        corrector: roleSpecSchema.optional(),
      })
      .strict()
      .optional(),
    search: searchSchema.optional(),
    /** `eval`'s judge: a backend's verifier, apart from the search's (its own options; the top-level `options` are the search's) */
    judge: roleSpecSchema.optional(),
    /** image size in pixels asked of generators and correctors (backends may have a fixed size) */
    size: positiveInt.optional(),
    /** where run directories go */
    out: z.string().min(1).optional(),
    /**
     * prices per backend name (`openai:gpt-4o`, `fal:fal-ai/flux/dev`, …) for the cost estimate, over the built-in
     * ones (src/core/prices.ts); `null` gives a backend no price, a built-in one included
     */
    prices: z
      .record(
        z.string(),
        z
          .object({
            perCall: z.number().nonnegative().optional(),
            perImage: z.number().nonnegative().optional(),
            perMillionInputTokens: z.number().nonnegative().optional(),
            perMillionOutputTokens: z.number().nonnegative().optional(),
          })
          .strict()
          .nullable(),
      )
      .optional(),
  })
  .strict();

export type ConfigFile = z.infer<typeof configSchema>;
export type RoleSpec = z.infer<typeof roleSpecSchema>;
export type SearchConfig = z.infer<typeof searchSchema>;
