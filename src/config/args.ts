// Flag parsing shared by every `sluice` command, `sluice agent` included.
// Flags are declared once with their default; every one is also settable as
// SLUICE_<FLAG> in the environment (flag wins over env, env over default).

export interface FlagSpec {
  name: string;
  help: string;
  default?: string;
  /** A boolean flag takes no value. */
  boolean?: boolean;
  short?: string;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly code = 'SLUICE_USAGE';
}

export function envName(flag: string): string {
  return `SLUICE_${flag.replaceAll('-', '_').toUpperCase()}`;
}

export interface Parsed {
  flags: Record<string, string | undefined>;
  positional: string[];
}

export function parseArgs(argv: readonly string[], specs: readonly FlagSpec[], env: NodeJS.ProcessEnv = process.env): Parsed {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const flags: Record<string, string | undefined> = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    let spec: FlagSpec | undefined;
    let value: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      spec = byName.get(name);
      if (!spec) throw new UsageError(`unknown flag --${name}`);
      if (eq >= 0) value = arg.slice(eq + 1);
    } else if (/^-[a-zA-Z]$/.test(arg)) {
      spec = byShort.get(arg.slice(1));
      if (!spec) throw new UsageError(`unknown flag ${arg}`);
    } else {
      positional.push(arg);
      continue;
    }
    if (spec.boolean) {
      if (value !== undefined && value !== 'true' && value !== 'false') throw new UsageError(`--${spec.name} takes no value`);
      flags[spec.name] = value ?? 'true';
      continue;
    }
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined) throw new UsageError(`--${spec.name} needs a value`);
      i++;
    }
    flags[spec.name] = value;
  }
  for (const spec of specs) {
    if (flags[spec.name] !== undefined) continue;
    const fromEnv = env[envName(spec.name)];
    flags[spec.name] = fromEnv !== undefined && fromEnv !== '' ? fromEnv : spec.default;
  }
  return { flags, positional };
}

export function formatFlags(specs: readonly FlagSpec[]): string {
  const rows = specs.map((s) => {
    const name = `${s.short ? `-${s.short}, ` : '    '}--${s.name}${s.boolean ? '' : ' VALUE'}`;
    const dflt = s.default !== undefined && s.default !== '' ? ` (default ${s.default})` : '';
    return [name, `${s.help}${dflt} [${envName(s.name)}]`] as const;
  });
  const width = Math.max(...rows.map(([n]) => n.length)) + 2;
  return rows.map(([n, h]) => `  ${n.padEnd(width)}${h}`).join('\n');
}

/** Checks a --pod value: "" (no filter) or NS/NAME. */
export function podFlag(value: string | undefined): string | undefined {
  if (!value) return undefined;
  if (!/^[^/\s]+\/[^/\s]+$/.test(value)) throw new UsageError(`--pod takes NS/NAME, not ${JSON.stringify(value)}`);
  return value;
}

/** A flag's whole decimal integer in [min, max]; "", "1e3", "-1", "2.5" and anything out of range are usage errors. */
export function parseIntFlag(flag: string, text: string | undefined, min: number, max: number): number {
  const t = (text ?? '').trim();
  const v = Number(t);
  if (!/^\d{1,16}$/.test(t) || v < min || v > max) throw new UsageError(`--${flag} must be an integer from ${min} to ${max}, not ${JSON.stringify(text ?? '')}`);
  return v;
}

/** Parses "500ms", "30s", "1m30s", "1h" or plain seconds into milliseconds. */
export function parseDurationMs(text: string): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    const n = Number(m[1]);
    total += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000;
    consumed = re.lastIndex;
  }
  if (consumed === 0 || consumed !== t.length) throw new UsageError(`invalid duration ${JSON.stringify(text)} (use 500ms, 30s, 1m30s or seconds)`);
  return Math.round(total);
}
