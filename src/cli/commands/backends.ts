import { Command } from 'commander';
import { listBackends } from '../../backends/registry.js';

export function backendsCommand(): Command {
  return new Command('backends').description('list the backends this build knows').action(() => {
    const lines = listBackends().map((b) => `${b.name.padEnd(14)} ${b.description}`);
    lines.push(`${'module:<path>'.padEnd(14)} your own ES module exporting createBackend(options) → roles`);
    process.stdout.write(lines.join('\n') + '\n');
  });
}
