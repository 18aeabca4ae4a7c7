/** serve's defaults, apart from the server so that the CLI's help does not load Fastify. */
export const DEFAULT_PORT = 8089;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_MAX_PIXELS = 4096 * 4096;
export const DEFAULT_MAX_QUEUED = 64;
