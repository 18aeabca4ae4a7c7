import { Command } from 'commander';

export function reportCommand(): Command {
  return new Command('report')
    .description('write report.html for a run directory: the reflection tree with images, scores and reflections')
    .argument('<runDir>', 'a run directory')
    .action(async (dir: string) => {
      const { writeReport } = await import('../../report/html.js');
      const file = await writeReport(dir);
      process.stdout.write(`${file}\n`);
    });
}
