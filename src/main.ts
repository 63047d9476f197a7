// Entry of build/bin/sluice: the CLI's commands plus `sluice agent`. This is
// the one module that knows both; src/cli and src/agent never import each
// other (they share src/config and src/api). The agent, with its addon and
// policy compiler, is imported only when that command runs.
import { CLI_COMMANDS, runCommandLine, type Command } from './cli/index.js';

const COMMANDS: Readonly<Record<string, Command>> = {
  agent: {
    summary: 'run the per-node daemon',
    run: async (argv) => (await import('./agent/index.js')).runAgent(argv),
  },
  ...CLI_COMMANDS,
};

void runCommandLine(COMMANDS, process.argv.slice(2));
