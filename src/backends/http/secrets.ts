import { UserError } from '../../core/errors.js';

/** Option names that would carry a secret in a config file. Keys come from environment variables only. */
const INLINE_SECRET = /^(api[-_]?key|key|token|secret|password|authorization|credentials?|bearer)$/i;

/**
 * Refuse options that carry a secret (`apiKey: "sk-…"`): API keys are read from the environment variable that
 * `apiKeyEnv` names, never from a config file.
 */
export function refuseInlineSecrets(backend: string, options: Record<string, unknown>): void {
  for (const k of Object.keys(options)) {
    if (INLINE_SECRET.test(k)) {
      throw new UserError(
        `${backend} backend: option '${k}' is not accepted: API keys are read from an environment variable (set 'apiKeyEnv' to its name)`,
      );
    }
  }
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The API key from the environment variable `apiKeyEnv` names (or `defaultEnv`). Missing and `required` →
 * UserError naming the variable (never its value). Registered with the scrubber so it never reaches a message.
 */
export function readApiKey(
  backend: string,
  apiKeyEnv: string | undefined,
  defaultEnv: string,
  required: boolean,
): string | undefined {
  const name = apiKeyEnv ?? defaultEnv;
  if (!ENV_NAME.test(name)) {
    throw new UserError(`${backend} backend: apiKeyEnv must name an environment variable (letters, digits, _), got something else`);
  }
  const value = process.env[name];
  if (!value) {
    if (required) throw new UserError(`${backend} backend: set the environment variable ${name} to your API key`);
    return undefined;
  }
  registerSecret(value);
  return value;
}

const secrets = new Set<string>();

/** Remember a value that must never appear in an error message. */
export function registerSecret(value: string): void {
  if (value.length >= 4) secrets.add(value);
}

/** Generic credential shapes, scrubbed even when we did not read the key ourselves. */
const PATTERNS: Array<[RegExp, string]> = [
  [/(bearer\s+)[^\s"',;]+/gi, '$1[redacted]'],
  [/([?&](?:key|api_key|apikey|token)=)[^&\s"']+/gi, '$1[redacted]'],
  [/((?:x-goog-api-key|authorization|api-key|x-api-key)["']?\s*[:=]\s*["']?)(?:key\s+)?[^\s"',;]+/gi, '$1[redacted]'],
  [/\bsk-[A-Za-z0-9_-]{6,}/g, 'sk-[redacted]'],
];

/** The message with every registered secret (and anything shaped like a credential) replaced. */
export function scrubSecrets(text: string): string {
  let out = text;
  for (const s of secrets) {
    out = out.split(s).join('[redacted]');
    const enc = encodeURIComponent(s);
    if (enc !== s) out = out.split(enc).join('[redacted]');
  }
  for (const [re, rep] of PATTERNS) out = out.replace(re, rep);
  return out;
}
