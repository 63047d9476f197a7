// Entry of build/bin/sluice. Each command module is imported only when that
// command runs, so `sluice --help` and the operator commands start fast.
import { UsageError } from './args.js';
import { VERSION } from './version.js';

interface Command {
  summary: string;
  run(argv: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  agent: {
    summary: 'run the per-node daemon',
    run: async (argv) => (await import('../agent/index.js')).runAgent(argv),
  },
  status: {
    summary: 'show the agent\'s state: manifests, policy conditions, DNS proxy counters',
    run: async (argv) => (await import('./operator.js')).statusCommand(argv),
  },
  endpoints: {
    summary: 'list the pods on this node',
    run: async (argv) => (await import('./operator.js')).endpointsCommand(argv),
  },
  fqdn: {
    summary: 'names learned from DNS: their addresses, time left, the rules they open',
    run: async (argv) => (await import('./fqdn.js')).fqdnCommand(argv),
  },
  observe: {
    summary: 'show flow events: drops with their reason, new allowed flows',
    run: async (argv) => (await import('./observe.js')).observeCommand(argv),
  },
  version: {
    summary: 'print the version',
    run: async () => {
      process.stdout.write(`sluice ${VERSION}\n`);
      return 0;
    },
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length)) + 2;
  return [
    'sluice — eBPF Kubernetes CNI with DNS-aware egress policy',
    '',
    'Usage: sluice <command> [flags]',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`),
    '',
    'Run `sluice <command> --help` for the flags of a command.',
    'Every flag is also settable in the environment as SLUICE_<FLAG> (e.g. SLUICE_STATE_DIR).',
    '',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') return COMMANDS.version!.run([]);
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`sluice: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const code = (err as { code?: string })?.code;
    if (code === 'SLUICE_AGENT_UNREACHABLE' || code?.startsWith('SLUICE_API')) {
      process.stderr.write(`sluice: ${(err as Error).message}\n`);
      process.exitCode = 1;
      return;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`sluice: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
