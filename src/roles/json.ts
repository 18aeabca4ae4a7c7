/**
 * The first JSON object in a model's answer: the whole text when it parses, else a ```json fenced block, else the
 * span from the first `{` to its matching `}`. Undefined when there is none.
 */
export function extractJson(text: string): unknown {
  const trimmed = text.trim();
  const tryParse = (s: string): unknown => {
    try {
      return JSON.parse(s);
    } catch {
      return undefined;
    }
  };
  const whole = tryParse(trimmed);
  if (whole !== undefined && typeof whole === 'object') return whole;
  const fence = /```(?:json)?\s*([\s\S]*?)```/i.exec(trimmed);
  if (fence) {
    const inner = tryParse(fence[1]!.trim());
    if (inner !== undefined && typeof inner === 'object') return inner;
  }
  const start = trimmed.indexOf('{');
  if (start < 0) return undefined;
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = start; i < trimmed.length; i++) {
    const c = trimmed[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return tryParse(trimmed.slice(start, i + 1));
  }
  return undefined;
}
