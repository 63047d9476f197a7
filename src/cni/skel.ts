// The only place where CNI errors become spec JSON on stdout and an exit
// status. Everything else throws CniError (or anything else, which becomes
// code 999 with the message kept).
import { readFileSync } from 'node:fs';
import { CniCode, CniError } from './errors.js';
import { CURRENT_VERSION, isSupportedVersion } from './versions.js';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'] as const;
export type CniCommand = (typeof COMMANDS)[number];

export interface CniEnv {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifname: string;
  args: string;
  path: string;
}

export interface CniRequest {
  env: CniEnv;
  /** Raw stdin bytes as received. */
  stdin: string;
  /** Parsed stdin; undefined when stdin was empty. */
  config: Record<string, unknown> | undefined;
}

export type Handler = (req: CniRequest) => Promise<unknown | undefined> | unknown | undefined;

export interface Io {
  env: NodeJS.ProcessEnv;
  readStdin(): string;
  writeStdout(s: string): void;
}

const processIo: Io = {
  env: process.env,
  readStdin: () => {
    try {
      return readFileSync(0, 'utf8');
    } catch {
      return '';
    }
  },
  writeStdout: (s) => {
    // fd 1 may be a pipe the runtime reads once we exit: write synchronously.
    process.stdout.write(s);
  },
};

/** Commands that need these env vars (spec 1.1 "Parameters"). */
const REQUIRED_ENV: Record<CniCommand, Array<keyof CniEnv>> = {
  ADD: ['containerId', 'netns', 'ifname'],
  DEL: ['containerId', 'ifname'],
  CHECK: ['containerId', 'netns', 'ifname'],
  VERSION: [],
  GC: [],
  STATUS: [],
};

const ENV_NAMES: Record<keyof CniEnv, string> = {
  command: 'CNI_COMMAND',
  containerId: 'CNI_CONTAINERID',
  netns: 'CNI_NETNS',
  ifname: 'CNI_IFNAME',
  args: 'CNI_ARGS',
  path: 'CNI_PATH',
};

export function parseEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND ?? '';
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new CniError(CniCode.INVALID_ENV, `unknown CNI_COMMAND ${JSON.stringify(command)}`, `expected one of ${COMMANDS.join(', ')}`);
  }
  const parsed: CniEnv = {
    command: command as CniCommand,
    containerId: env.CNI_CONTAINERID ?? '',
    netns: env.CNI_NETNS ?? '',
    ifname: env.CNI_IFNAME ?? '',
    args: env.CNI_ARGS ?? '',
    path: env.CNI_PATH ?? '',
  };
  for (const key of REQUIRED_ENV[parsed.command]) {
    if (parsed[key] === '') throw new CniError(CniCode.INVALID_ENV, `${ENV_NAMES[key]} is required for ${parsed.command}`);
  }
  if (parsed.ifname !== '' && !/^[^\s/:]{1,15}$/.test(parsed.ifname)) {
    throw new CniError(CniCode.INVALID_ENV, `invalid CNI_IFNAME ${JSON.stringify(parsed.ifname)}`, 'must be 1-15 characters without whitespace, "/" or ":"');
  }
  return parsed;
}

function parseConfig(stdin: string): Record<string, unknown> | undefined {
  if (stdin.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CniCode.DECODE_FAILURE, 'failed to decode network configuration', (err as Error).message);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new CniError(CniCode.DECODE_FAILURE, 'network configuration must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/** The version to render an error in: the config's, if we speak it. */
function errorVersion(stdin: string): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    if (isSupportedVersion(v)) return v;
  } catch {
    // undecodable config: answer in our own version
  }
  return CURRENT_VERSION;
}

/**
 * Runs one CNI invocation and returns the exit status. Output (a result, a
 * VERSION answer or an error) is written to stdout in one piece.
 */
export async function runSkel(handlers: Record<CniCommand, Handler>, io: Io = processIo): Promise<number> {
  let stdin = '';
  try {
    const env = parseEnv(io.env);
    stdin = io.readStdin();
    const config = parseConfig(stdin);
    const out = await handlers[env.command]({ env, stdin, config });
    if (out !== undefined) io.writeStdout(`${JSON.stringify(out)}\n`);
    return 0;
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(CniCode.INTERNAL, (err as Error)?.message ?? String(err));
    io.writeStdout(`${JSON.stringify(e.toJSON(errorVersion(stdin)))}\n`);
    return 1;
  }
}
