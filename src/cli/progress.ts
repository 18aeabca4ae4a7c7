import cliProgress from 'cli-progress';
import type { CallEvent } from '../search/io.js';

/**
 * Progress of one search: a bar on a TTY, plain lines otherwise (logs, CI). Everything goes to stderr so that
 * stdout carries only the summary.
 */
export class Progress {
  private bar: cliProgress.SingleBar | undefined;
  private images = 0;
  private calls = 0;

  constructor(
    private readonly budget: number,
    private readonly label: string,
    private readonly quiet = false,
    private readonly tty = Boolean(process.stderr.isTTY),
  ) {
    if (this.tty && !quiet) {
      this.bar = new cliProgress.SingleBar(
        {
          format: `${label} |{bar}| {value}/{total} images | {calls} calls | best {best}`,
          stream: process.stderr,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(budget, 0, { calls: 0, best: '-' });
    }
  }

  private best = -Infinity;
  private stopped = false;

  onCall = (event: CallEvent, replayed: boolean): void => {
    // calls already in flight when the search stopped still settle; their lines would follow the resume hint
    if (this.stopped) return;
    this.calls++;
    if (event.outputId && !event.error) this.images++;
    if (event.evaluation && event.evaluation.score > this.best) this.best = event.evaluation.score;
    if (this.bar) {
      this.bar.update(this.images, { calls: this.calls, best: Number.isFinite(this.best) ? this.best.toFixed(3) : '-' });
      return;
    }
    if (this.quiet) return;
    const what = event.error
      ? `failed: ${event.error}`
      : event.evaluation
        ? `score ${event.evaluation.score.toFixed(3)}${event.evaluation.label ? ` (${event.evaluation.label})` : ''}`
        : event.reflection && event.role === 'reflector'
          ? `${event.reflection.items.length} instructions`
          : event.refinedPrompt
            ? `prompt: ${event.refinedPrompt}`
            : `image ${this.images}/${this.budget}`;
    process.stderr.write(
      `${this.label} ${event.role.padEnd(9)} ${event.candidateId} ${what}${replayed ? ' (from earlier run)' : ''}\n`,
    );
  };

  stop(): void {
    this.stopped = true;
    this.bar?.stop();
  }
}
