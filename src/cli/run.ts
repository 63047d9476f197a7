// The `sluice` command line: the operator commands and the dispatch of argv
// to a command. The binary's entry (src/main.ts) adds `sluice agent`, so this
// folder never imports the agent. Each command module is imported only when
// that command runs, so `sluice --help` and the operator commands start fast.
import { UsageError, VERSION } from '../config/index.js';

export interface Command {
  summary: string;
  run(argv: string[]): Promise<number>;
}

/** The commands that talk to a running agent, and `version`. */
export const CLI_COMMANDS: Readonly<Record<string, Command>> = {
  status: {
    summary: 'the agent\'s state: version, sources, programs, map fill, policy conditions, DNS proxy, errors',
    run: async (argv) => (await import('./operator.js')).statusCommand(argv),
  },
  endpoints: {
    summary: 'the pods on this node: identity, labels, ingress/egress enforcement, policies',
    run: async (argv) => (await import('./operator.js')).endpointsCommand(argv),
  },
  fqdn: {
    summary: 'names learned from DNS: their addresses, time left, the rules they open',
    run: async (argv) => (await import('./fqdn.js')).fqdnCommand(argv),
  },
  observe: {
    summary: 'flow events: drops and audits with their reason and policy, new allowed flows',
    run: async (argv) => (await import('./observe.js')).observeCommand(argv),
  },
  explain: {
    summary: 'whether policy allows a flow, and which policies and rules decide it (live, or offline with --manifests)',
    run: async (argv) => (await import('./explain.js')).explainCommand(argv),
  },
  test: {
    summary: 'check flow assertions against policy: offline with --manifests, or --live with real probes',
    run: async (argv) => (await import('./assertions.js')).testCommand(argv),
  },
  'install-cni': { summary: 'install sluice-cni and the conflist on the node (the DaemonSet\'s init step)', run: async (argv) => (await import('./install-cni.js')).installCniCommand(argv) },
  version: {
    summary: 'print the version',
    run: async () => {
      process.stdout.write(`sluice ${VERSION}\n`);
      return 0;
    },
  },
};

function usage(commands: Readonly<Record<string, Command>>): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length)) + 2;
  return [
    'sluice — eBPF Kubernetes CNI with DNS-aware egress policy',
    '',
    'Usage: sluice <command> [flags]',
    '',
    'Commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`),
    '',
    'Run `sluice <command> --help` for the flags of a command.',
    'Every flag is also settable in the environment as SLUICE_<FLAG> (e.g. SLUICE_STATE_DIR).',
    '',
  ].join('\n');
}

async function main(commands: Readonly<Record<string, Command>>, argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage(commands));
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') return commands.version!.run([]);
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    process.stderr.write(`sluice: unknown command ${JSON.stringify(name)}\n\n${usage(commands)}`);
    return 2;
  }
  return command.run(rest);
}

/** Runs argv's command and sets the exit status: 2 for a usage error, 1 for an agent that cannot answer. */
export function runCommandLine(commands: Readonly<Record<string, Command>>, argv: string[]): Promise<void> {
  return main(commands, argv).then(
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
}
