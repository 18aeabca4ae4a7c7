/** OpenAI-style error answers: `{error: {message, type, param, code}}` with an HTTP status. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly type: string = status >= 500 ? 'server_error' : 'invalid_request_error',
    /** response headers that go with it (Allow, Retry-After) */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  /** The wire body; a message past MAX_MESSAGE characters (one that quotes a huge input) is cut. */
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    const message = this.message.length > MAX_MESSAGE ? `${this.message.slice(0, MAX_MESSAGE)}…` : this.message;
    return { error: { message, type: this.type, param: this.param, code: this.code } };
  }
}

const MAX_MESSAGE = 400;

/** A client's value inside an error message: quoted, control characters blanked, at most `max` characters. */
export function quote(value: string, max = 80): string {
  const clean = value.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return clean.length <= max ? `'${clean}'` : `'${clean.slice(0, max)}…' (${value.length} characters)`;
}

export function badRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
  return new ApiError(400, message, code, param);
}
