import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { UserError, errorMessage } from '../core/errors.js';
import { configSchema, type ConfigFile } from './schema.js';
import { isOfficialLayout, mapOfficial, officialSchema } from './official.js';

export interface LoadedConfig {
  config: ConfigFile;
  /** `ours` or `official` (mapped) */
  layout: 'ours' | 'official';
}

/** Read a JSON or YAML config file, ours or the official ReflectionFlow layout. Any problem → UserError. */
export function loadConfigFile(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read config ${file} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`);
  }
  let raw: unknown;
  try {
    raw = /\.ya?ml$/i.test(file) ? YAML.parse(text) : JSON.parse(text);
  } catch (err) {
    const kind = /\.ya?ml$/i.test(file) ? 'YAML' : 'JSON';
    throw new UserError(`config ${file} is not valid ${kind}: ${errorMessage(err).split('\n')[0]}`);
  }
  return parseConfig(raw, file);
}

export function parseConfig(raw: unknown, source = 'config'): LoadedConfig {
  if (isOfficialLayout(raw)) {
    const official = officialSchema.safeParse(raw);
    if (!official.success) throw new UserError(`${source} (official layout): ${describe(official.error)}`);
    return { config: configSchema.parse(mapOfficial(official.data)), layout: 'official' };
  }
  const ours = configSchema.safeParse(raw ?? {});
  if (!ours.success) throw new UserError(`${source}: ${describe(ours.error)}`);
  return { config: ours.data, layout: 'ours' };
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const where = issue.path.length ? issue.path.join('.') : '(top level)';
  return `${where}: ${issue.message}`;
}

const SECRET = /key|token|secret|password|authorization|credential/i;

/** Query parameters that carry credentials in the URLs of the services we call (`?key=` for Gemini, SAS `sig=`). */
const SECRET_PARAM = /^(key|api[-_]?key|access[-_]?token|token|secret|password|sig|signature|auth)$/i;

/**
 * A URL with its credentials taken out: the user-info part (`http://user:sk-…@host`) and key-like query
 * parameters. Strings that are not absolute URLs come back unchanged.
 */
export function redactUrl(text: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return text;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return text;
  }
  let changed = false;
  if (url.username || url.password) {
    url.username = '';
    url.password = '';
    changed = true;
  }
  for (const name of [...url.searchParams.keys()]) {
    if (SECRET_PARAM.test(name)) {
      url.searchParams.delete(name);
      changed = true;
    }
  }
  return changed ? url.toString() : text;
}

/** The config as kept in run.json: anything that looks like a secret is removed, credentials in URLs too. */
export function redactSecrets<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v)) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      // `apiKeyEnv: OPENAI_API_KEY` names a variable, it is not a secret
      if (SECRET.test(k) && !/env$/i.test(k) && typeof v === 'string') continue;
      out[k] = redactSecrets(v);
    }
    return out as T;
  }
  if (typeof value === 'string') return redactUrl(value) as T;
  return value;
}
