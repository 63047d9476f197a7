// Real DNS servers for the DNS-aware egress policy tests, each in a test
// network namespace: an authoritative server (nsd), recursive forwarders
// (unbound, dnsmasq) and a rogue resolver that answers one address for every
// name (dnsmasq). Plus a dig runner and typed wrappers for dnsprobe.py, the
// pod-side DNS client.
//
// Every daemon runs in the foreground, entered with nsenter, in its own
// process group (nsd forks a main and a server process off the one we start),
// with its config, zone files and logs in a temp dir. The Cleanup kills the
// whole group with SIGKILL and removes the dir; that step is registered before
// anything can throw. A daemon counts as ready when a real query answers.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cleanup, Netns } from './netns.js';

// Beside this file; a bench bundle (bench/run.mjs) sets import.meta.dirname to bench/<name> for all it bundles.
const DNSPROBE = [join(import.meta.dirname, 'dnsprobe.py'), join(import.meta.dirname, '../../test/helpers/dnsprobe.py')].find((p) => existsSync(p)) ?? join(import.meta.dirname, 'dnsprobe.py');
const READY_TIMEOUT_MS = 15_000;

export interface ZoneRecord {
  /** Relative to the zone's origin ('@' or '' for the apex), or absolute with a trailing dot. */
  name: string;
  type: 'A' | 'AAAA' | 'CNAME' | 'TXT';
  /** An address, a CNAME target (relative or absolute, as names are) or the TXT text. */
  value: string;
  ttl?: number;
}

export interface Zone {
  /** Without the trailing dot, e.g. 'example.test'. */
  origin: string;
  records: ZoneRecord[];
  /** TTL of the records without one (and of the SOA and NS); 3600 by default. */
  defaultTtl?: number;
}

/** A running DNS daemon. stop() kills it at once (SIGKILL); log() is its log file plus its stdout and stderr. */
export interface DnsServer {
  readonly address: string;
  readonly port: number;
  stop(): void;
  log(): string;
}
export type AuthServer = DnsServer;
export type Forwarder = DnsServer;

/** One foreground daemon in a netns, with its temp dir. */
class Daemon {
  readonly dir: string;
  readonly #name: string;
  readonly #output: string;
  #logFile: string | undefined;
  #child: ChildProcess | undefined;
  #spawnError: Error | undefined;
  #stopped = false;

  constructor(cleanup: Cleanup, name: string) {
    this.#name = name;
    this.dir = mkdtempSync(join(tmpdir(), `slt-${name}-`));
    this.#output = join(this.dir, 'output.log');
    // Registered before anything below can throw, so nothing leaks.
    cleanup.add(() => {
      this.stop();
      rmSync(this.dir, { recursive: true, force: true });
    });
  }

  path(file: string): string {
    return join(this.dir, file);
  }

  /** Starts `cmd args` in `ns`; `logFile` is where the daemon itself logs, if anywhere. */
  spawn(ns: Netns, cmd: string, args: string[], logFile?: string): void {
    this.#logFile = logFile;
    const fd = openSync(this.#output, 'a');
    try {
      // detached: a process group of its own, so stop() reaches every process it forks.
      this.#child = spawn('nsenter', [`--net=${ns.path}`, cmd, ...args], { detached: true, stdio: ['ignore', fd, fd] });
      this.#child.on('error', (err) => (this.#spawnError = err));
    } finally {
      closeSync(fd);
    }
  }

  stop(): void {
    const pid = this.#child?.pid;
    if (pid === undefined || this.#stopped) return;
    this.#stopped = true;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // the whole group is gone already
    }
  }

  log(): string {
    return [this.#logFile, this.#output]
      .filter((f): f is string => f !== undefined && existsSync(f))
      .map((f) => readFileSync(f, 'utf8'))
      .join('');
  }

  /** Polls `ready` (a real query) until it holds; throws with the log if the daemon exits or the time runs out. */
  async waitReady(ready: () => boolean, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const child = this.#child!;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.#spawnError) throw new Error(`${this.#name} did not start: ${this.#spawnError.message}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${this.#name} exited with ${child.exitCode ?? child.signalCode}:\n${this.log()}`);
      }
      if (ready()) return;
      if (Date.now() > deadline) throw new Error(`${this.#name} did not answer within ${timeoutMs} ms:\n${this.log()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  server(address: string, port: number): DnsServer {
    return { address, port, stop: () => this.stop(), log: () => this.log() };
  }
}

// --- nsd ---------------------------------------------------------------------

/** An authoritative server (nsd) for `zones`, on `address` (already assigned in `ns`) and `port` (53). */
export async function startAuthServer(
  cleanup: Cleanup,
  ns: Netns,
  opts: { address: string; zones: Zone[]; port?: number },
): Promise<AuthServer> {
  const port = opts.port ?? 53;
  const d = new Daemon(cleanup, 'nsd');
  const zones = opts.zones.map((z) => ({ ...z, origin: z.origin.replace(/\.$/, '') }));
  const conf = [
    'server:',
    `  ip-address: ${opts.address}`,
    `  port: ${port}`,
    '  username: ""', // no privilege drop: we are root and our files are root's
    '  chroot: ""',
    `  zonesdir: "${d.dir}"`,
    `  pidfile: "${d.path('nsd.pid')}"`,
    '  database: ""', // no compiled nsd.db: zones are read from the zone files
    `  xfrdfile: "${d.path('xfrd.state')}"`,
    `  zonelistfile: "${d.path('zone.list')}"`,
    `  xfrdir: "${d.dir}"`, // default /tmp
    `  cookie-secret-file: "${d.path('cookiesecrets.txt')}"`, // default /etc/nsd/...
    `  logfile: "${d.path('nsd.log')}"`,
    '  verbosity: 1',
    '  server-count: 1',
    '  hide-version: yes',
    // Response rate limiting is compiled in and on by default (200 qps per
    // source /24): a load test from one pod would see dropped and TC answers.
    '  rrl-ratelimit: 0',
    '  rrl-whitelist-ratelimit: 0',
    // No NS/glue in the authority and additional sections: answers are just the answer.
    '  minimal-responses: yes',
    // Debian's nsd has remote control on (::1 and 127.0.0.1 port 8952): a
    // second nsd in the same netns would fail to bind it.
    'remote-control:',
    '  control-enable: no',
    ...zones.flatMap((z) => ['zone:', `  name: "${z.origin}"`, `  zonefile: "${d.path(`${z.origin}.zone`)}"`]),
  ];
  writeFileSync(d.path('nsd.conf'), conf.join('\n') + '\n');
  for (const z of zones) writeFileSync(d.path(`${z.origin}.zone`), zoneFile(z, opts.address));
  d.spawn(ns, 'nsd', ['-d', '-c', d.path('nsd.conf')], d.path('nsd.log'));
  // Ready once every zone is loaded: its SOA answers NOERROR.
  await d.waitReady(() => zones.every((z) => dig(ns, opts.address, z.origin, { type: 'SOA', port, timeoutS: 1 }).status === 'NOERROR'));
  return d.server(opts.address, port);
}

/** The zone file text: SOA, NS (ns.<origin>, with glue at `address` unless the zone has its own `ns`), then the records. */
function zoneFile(zone: Zone, address: string): string {
  const ttl = zone.defaultTtl ?? 3600;
  const origin = `${zone.origin}.`;
  const lines = [
    `$ORIGIN ${origin}`,
    `$TTL ${ttl}`,
    // serial refresh retry expire minimum (the negative-answer TTL)
    `@ IN SOA ns.${origin} hostmaster.${origin} 1 3600 600 86400 5`,
    `@ IN NS ns.${origin}`,
  ];
  if (!zone.records.some((r) => r.name.toLowerCase() === 'ns' || r.name.toLowerCase() === `ns.${origin}`.toLowerCase())) {
    lines.push(`ns IN ${isIPv6(address) ? 'AAAA' : 'A'} ${address}`);
  }
  for (const r of zone.records) {
    const name = r.name === '' ? '@' : r.name;
    lines.push(`${name} ${r.ttl ?? ttl} IN ${r.type} ${rdata(zone.origin, r)}`);
  }
  return lines.join('\n') + '\n';
}

function rdata(origin: string, r: ZoneRecord): string {
  const bad = (): never => {
    throw new Error(`zone ${origin}: ${r.name} ${r.type} ${JSON.stringify(r.value)} is not a valid value`);
  };
  switch (r.type) {
    case 'A':
      return isIPv4(r.value) ? r.value : bad();
    case 'AAAA':
      return isIPv6(r.value) ? r.value : bad();
    case 'CNAME':
      return /^(@|[A-Za-z0-9_.-]+)$/.test(r.value) ? r.value : bad();
    case 'TXT':
      return txtStrings(r.value);
  }
}

/** TXT text as zone-file character-strings: at most 255 bytes each, quoted, with \DDD for anything unsafe. */
function txtStrings(text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  const parts: string[] = [];
  // At least one string, even for empty text.
  for (let i = 0; i === 0 || i < bytes.length; i += 255) {
    let s = '';
    for (const b of bytes.subarray(i, i + 255)) {
      s += b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\${String(b).padStart(3, '0')}`;
    }
    parts.push(`"${s}"`);
  }
  return parts.join(' ');
}

// --- unbound -----------------------------------------------------------------

/**
 * A recursive server (unbound) on address:port that resolves names in `zones`
 * by asking upstream:upstreamPort. It answers REFUSED to names outside them,
 * and never sends a query to an address other than the upstream's (a CNAME out
 * of the zones is chased at upstream:53, and fails).
 *
 * cache: false (the default) is as close as unbound gets to no cache: it
 * cannot turn its caches off, so they are made minimal and cache-max-ttl 0
 * makes every entry expire at once, so each query is fetched upstream again.
 * A side effect: clients then see TTL 0 in every answer. With cache: true the
 * answers carry the upstream's TTLs (counting down while cached).
 */
export async function startForwarder(
  cleanup: Cleanup,
  ns: Netns,
  opts: { address: string; upstream: string; upstreamPort?: number; zones: string[]; port?: number; cache?: boolean },
): Promise<Forwarder> {
  const port = opts.port ?? 53;
  const d = new Daemon(cleanup, 'unbound');
  const zones = opts.zones.map((z) => z.replace(/\.$/, ''));
  const conf = [
    'server:',
    '  do-daemonize: no',
    `  interface: ${opts.address}`,
    `  port: ${port}`,
    '  access-control: 0.0.0.0/0 allow',
    '  access-control: ::/0 allow',
    '  username: ""',
    '  chroot: ""',
    `  directory: "${d.dir}"`,
    `  pidfile: "${d.path('unbound.pid')}"`,
    '  use-syslog: no',
    `  logfile: "${d.path('unbound.log')}"`,
    '  verbosity: 1',
    '  num-threads: 1',
    '  so-reuseport: no',
    '  module-config: "iterator"', // no validator, so no trust anchor is needed
    '  do-not-query-localhost: no',
    // One upstream query per client query: no QNAME minimisation probes, no
    // lookups of the NS names' addresses.
    '  qname-minimisation: no',
    '  target-fetch-policy: "0 0 0 0 0"',
    ...(opts.cache ? [] : ['  msg-cache-size: 0', '  rrset-cache-size: 0', '  cache-max-ttl: 0']),
    // Not the real root servers (the built-in hints): a test netns with a
    // default route would otherwise query the Internet.
    `  root-hints: "${d.path('root.hints')}"`,
    '  local-zone: "." refuse',
    ...zones.flatMap((z) => [
      `  domain-insecure: "${z}."`,
      // Unbound answers some names itself (test., invalid., onion., home.arpa.,
      // ...: NXDOMAIN) and a stub zone below them does not override that; a
      // transparent local zone of our own for the zone does (and so lets the
      // zone's names past the refuse at the root).
      `  local-zone: "${z}." transparent`,
    ]),
    ...zones.flatMap((z) => ['stub-zone:', `  name: "${z}."`, `  stub-addr: ${opts.upstream}@${opts.upstreamPort ?? 53}`]),
  ];
  writeFileSync(d.path('unbound.conf'), conf.join('\n') + '\n');
  const hint = `${isIPv6(opts.upstream) ? 'AAAA' : 'A'} ${opts.upstream}`;
  writeFileSync(d.path('root.hints'), `. 3600000 NS upstream.root.\nupstream.root. 3600000 ${hint}\n`);
  d.spawn(ns, 'unbound', ['-d', '-c', d.path('unbound.conf')], d.path('unbound.log'));
  // version.server is answered by unbound itself, upstream or not.
  await d.waitReady(() => dig(ns, opts.address, 'version.server', { type: 'TXT', class: 'CH', port, timeoutS: 1 }).status !== 'timeout');
  return d.server(opts.address, port);
}

// --- dnsmasq -----------------------------------------------------------------

export type DnsmasqOptions =
  /** Answers `answer` to every A query (other types: REFUSED). */
  | { mode: 'rogue'; address: string; answer: string; port?: number; logQueries?: boolean }
  /** Forwards everything to upstream:upstreamPort; cacheSize 0 (the default) means no cache at all. */
  | { mode: 'forwarder'; address: string; upstream: string; upstreamPort?: number; port?: number; cacheSize?: number };

export async function startDnsmasq(cleanup: Cleanup, ns: Netns, opts: DnsmasqOptions): Promise<DnsServer> {
  const port = opts.port ?? 53;
  const d = new Daemon(cleanup, 'dnsmasq');
  const log = d.path('dnsmasq.log');
  const mode =
    opts.mode === 'rogue'
      ? [`--address=/#/${opts.answer}`]
      : [`--server=${opts.upstream}#${opts.upstreamPort ?? 53}`, `--cache-size=${opts.cacheSize ?? 0}`];
  const args = [
    '-k',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    `--listen-address=${opts.address}`,
    '--bind-interfaces',
    `--port=${port}`,
    '--user=root',
    `--pid-file=${d.path('dnsmasq.pid')}`,
    `--log-facility=${log}`,
    // "query[A] NAME from ADDRESS": who asked (the log() of the server).
    ...(opts.mode === 'rogue' && opts.logQueries ? ['--log-queries'] : []),
    ...mode,
  ];
  d.spawn(ns, 'dnsmasq', args, log);
  // version.bind is answered by dnsmasq itself, upstream or not.
  await d.waitReady(() => dig(ns, opts.address, 'version.bind', { type: 'TXT', class: 'CH', port, timeoutS: 1 }).status !== 'timeout');
  return d.server(opts.address, port);
}

// --- dig ---------------------------------------------------------------------

export interface DigAnswer {
  /** Lowercase, without the trailing dot (so are CNAME values). */
  name: string;
  ttl: number;
  type: string;
  /** Addresses as dig prints them, CNAME targets as names are, TXT strings unquoted and joined. */
  value: string;
}

export interface DigResult {
  /** The reply's RCODE (NOERROR, NXDOMAIN, ...), or 'timeout' when no reply came back at all (timed out, or refused or unreachable). */
  status: string;
  answers: DigAnswer[];
}

/** One query with dig from inside `ns`, one try, recursion desired. */
export function dig(
  ns: Netns,
  server: string,
  name: string,
  opts: { type?: string; class?: 'IN' | 'CH'; tcp?: boolean; port?: number; timeoutS?: number } = {},
): DigResult {
  const args = [
    `@${server}`,
    '-p', String(opts.port ?? 53),
    '-c', opts.class ?? 'IN',
    '-t', opts.type ?? 'A',
    '-q', name,
    '+tries=1',
    `+time=${Math.max(1, Math.ceil(opts.timeoutS ?? 2))}`,
    '+noall', '+answer', '+comments',
    ...(opts.tcp ? ['+tcp'] : []),
  ];
  const r = spawnSync('nsenter', [`--net=${ns.path}`, 'dig', ...args], { encoding: 'utf8' });
  if (r.status === 9) return { status: 'timeout', answers: [] }; // dig: "no reply from server"
  if (r.status !== 0) throw new Error(`dig ${args.join(' ')} failed (${r.status ?? r.signal ?? r.error?.message}): ${r.stderr}${r.stdout}`);
  const status = /->>HEADER<<-.*\bstatus: ([A-Z0-9]+)/.exec(r.stdout)?.[1];
  if (!status) throw new Error(`dig ${args.join(' ')}: no header in its output:\n${r.stdout}`);
  const answers: DigAnswer[] = [];
  for (const line of r.stdout.split('\n')) {
    // With +noall +answer +comments, every line that is not a comment is an answer record.
    const m = /^([^;\s]\S*)\s+(\d+)\s+\S+\s+(\S+)\s+(.*)$/.exec(line);
    if (m) answers.push({ name: bareName(m[1]!), ttl: Number(m[2]), type: m[3]!, value: rdataValue(m[3]!, m[4]!) });
  }
  return { status, answers };
}

function bareName(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

function rdataValue(type: string, text: string): string {
  if (type === 'CNAME') return bareName(text);
  if (type !== 'TXT') return text;
  // dig prints each character-string quoted, with \" \\ and \DDD escapes.
  const bytes: number[] = [];
  for (const [, s] of text.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
    for (const [, ddd, ch] of s!.matchAll(/\\(\d{3})|\\?([\s\S])/gu)) {
      if (ddd) bytes.push(Number(ddd));
      else bytes.push(...Buffer.from(ch!, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

// --- dnsprobe.py ---------------------------------------------------------------

export interface ProbeLookupResult {
  name: string;
  rcode: string | null;
  ip: string | null;
  connected: boolean;
  /** 'dns-timeout', 'no-address', 'rcode-nxdomain', 'econnrefused', 'timeout', ... */
  error: string | null;
  dns_ms: number | null;
  connect_ms: number | null;
}

export interface ProbeAnswer {
  name: string;
  type: string;
  ttl: number;
  value: string;
}

export interface ProbeQueryResult {
  /** null if nothing came back. */
  rcode: string | null;
  id: number | null;
  aa: boolean | null;
  tc: boolean | null;
  answers: ProbeAnswer[];
  elapsed_ms: number;
  error: string | null;
}

/** For each name in turn: an A (AAAA for family 6) query, then a connect to the address it got (see dnsprobe.py). */
export function probeLookupConnect(
  ns: Netns,
  opts: { server: string; names: string[]; port: number; proto?: 'tcp' | 'udp'; family?: 4 | 6; timeoutS?: number; dnsPort?: number },
): Promise<{ results: ProbeLookupResult[]; failures: number }> {
  return runProbe(ns, [
    'lookup-connect',
    '--server', opts.server,
    '--names', opts.names.join(','),
    '--port', String(opts.port),
    '--proto', opts.proto ?? 'tcp',
    '--family', String(opts.family ?? 4),
    '--timeout', String(opts.timeoutS ?? 1),
    '--dns-port', String(opts.dnsPort ?? 53),
  ]);
}

/** One query with a chosen ID, exactly as asked (no TCP fallback on TC). */
export function probeQuery(
  ns: Netns,
  opts: { server: string; name: string; type?: 'A' | 'AAAA' | 'CNAME' | 'TXT' | 'SOA' | 'NS'; tcp?: boolean; id?: number; port?: number; timeoutS?: number },
): Promise<ProbeQueryResult> {
  return runProbe(ns, [
    'query',
    '--server', opts.server,
    '--name', opts.name,
    '--type', opts.type ?? 'A',
    ...(opts.tcp ? ['--tcp'] : []),
    ...(opts.id !== undefined ? ['--id', String(opts.id)] : []),
    '--port', String(opts.port ?? 53),
    '--timeout', String(opts.timeoutS ?? 1),
  ]);
}

/** `count` UDP datagrams of the given bytes; with `wait` (seconds), whatever comes back until then (as hex). */
export function probeSendRaw(
  ns: Netns,
  opts: { server: string; port?: number; hex: string; count?: number; wait?: number },
): Promise<{ sent: number; replies: string[] }> {
  return runProbe(ns, [
    'send-raw',
    '--server', opts.server,
    '--port', String(opts.port ?? 53),
    '--hex', opts.hex,
    '--count', String(opts.count ?? 1),
    '--wait', String(opts.wait ?? 0),
  ]);
}

/** What a `stream` client saw (dnsprobe.py stream). */
export interface StreamResult {
  lookups: number;
  /** No answer after every attempt. */
  failed: number;
  /** Answered only after a retry. */
  retried: number;
  /** Attempts without an answer. */
  unanswered: number;
  longest_stall_ms: number;
  stall_at_s: number;
  p50_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
}

/**
 * A steady resolver client for `seconds`: one lookup every 1/rate s, round
 * robin over `names`, each tried `attempts` times `timeoutS` apart (glibc's
 * `options timeout:1 attempts:2` by default). Resolves when it has finished.
 */
export function probeStream(ns: Netns, opts: { server: string; names: string[]; rate: number; seconds: number; timeoutS?: number; attempts?: number }): Promise<StreamResult> {
  return runProbe(ns, [
    'stream',
    '--server', opts.server,
    '--names', opts.names.join(','),
    '--rate', String(opts.rate),
    '--seconds', String(opts.seconds),
    '--timeout', String(opts.timeoutS ?? 1),
    '--attempts', String(opts.attempts ?? 2),
  ]);
}

function runProbe<T>(ns: Netns, args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${ns.path}`, 'python3', DNSPROBE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const what = `dnsprobe.py ${args.join(' ')}`;
      if (code !== 0) return reject(new Error(`${what} exited with ${code ?? signal}: ${err}${out}`));
      try {
        resolve(JSON.parse(out) as T);
      } catch {
        reject(new Error(`${what} printed no JSON: ${out}${err}`));
      }
    });
  });
}
