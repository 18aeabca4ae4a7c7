/** Errors that end the CLI with their own exit code (main.ts), apart from the commands so that main loads none. */

/** Exit code 3: some calls failed; the summary was printed, the run is resumable. */
export class RunIncomplete extends Error {}

/** Exit code 130: stopped by Ctrl-C; resumable. */
export class Interrupted extends Error {}
