/** The benches' command-line flags: `--name value`, read the same way by every bench. */

/** A flag's value, or `fallback` when the flag is not given. */
export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

/** A number flag's value; undefined when it is not given (the model card's default then). */
export function optionalNumberArg(name: string): number | undefined {
  return process.argv.includes(`--${name}`) ? Number(arg(name, '')) : undefined;
}

/** A number flag's value, or `fallback` when the flag is not given. */
export function numberArg(name: string, fallback: number): number {
  return optionalNumberArg(name) ?? fallback;
}
