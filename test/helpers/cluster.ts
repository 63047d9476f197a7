// The NetworkPolicy truth-table harness: one simulated node (TestNode: a netns
// running the real `sluice agent --standalone`), namespaces x, y, z with pods
// a, b, c each, created through the real sluice-cni binary, and in every pod a
// prober (test/helpers/prober.py) that serves TCP 80, TCP 81, UDP 80 and runs
// probes on command. The harness writes manifests into the node's standalone
// directory, probes the full 9×9 matrix (every port asked, all in parallel)
// and compares it with the expected matrix, polling until it matches or a
// deadline passes, and prints an upstream-style grid of what differed.
//
// Knobs (environment): SLUICE_NETPOL_PROBE_TIMEOUT_MS (400): how long a probe
// waits for the handshake or the echo; SLUICE_NETPOL_DEADLINE_MS (2000): how
// long a step may take to be enforced; SLUICE_NETPOL_POLL_MS (100): the least
// time between two probe rounds; SLUICE_NETPOL_LOOPBACK (allowed): what to
// expect of a pod probing itself (see Loopback).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { expectedMatrix, parseIp, type ContainerPort, type Family, type Labels, type ModelPod, type Policy, type Probe, type World } from '../netpol/model.js';
import type { CaseContext, PodKey } from '../netpol/cases.js';
import { cni, podArgs, SLUICE, TestNode } from './agent.js';
import type { Cleanup, Netns } from './netns.js';

const PROBER = join(import.meta.dirname, 'prober.py');
const PYTHON = process.env.SLUICE_PYTHON ?? '/usr/bin/python3';

/**
 * A pod probing its own address never leaves its network namespace (the
 * kernel delivers it over lo), so no CNI can filter it. Upstream's netpol e2e
 * suite ignores these cells; "allowed" (the default) expects them to connect,
 * which also proves every prober serves; "model" holds them to the policy;
 * "ignored" skips them.
 */
export type Loopback = 'allowed' | 'model' | 'ignored';

export interface ClusterOptions {
  podCidr: string;
  nodeIp: string;
  probeTimeoutMs: number;
  deadlineMs: number;
  pollMs: number;
  loopback: Loopback;
}

function envNumber(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

export const DEFAULT_OPTIONS: ClusterOptions = {
  podCidr: '10.66.0.0/24,fd00:66::/64',
  nodeIp: '10.66.255.1/32',
  probeTimeoutMs: envNumber('SLUICE_NETPOL_PROBE_TIMEOUT_MS', 400),
  deadlineMs: envNumber('SLUICE_NETPOL_DEADLINE_MS', 2000),
  pollMs: envNumber('SLUICE_NETPOL_POLL_MS', 100),
  loopback: (['allowed', 'model', 'ignored'] as const).find((l) => l === process.env.SLUICE_NETPOL_LOOPBACK) ?? 'allowed',
};

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const POD_NAMES = ['a', 'b', 'c'] as const;

/** Container ports of a pod: the three served ones, plus alt-tcp on b (81) and c (80). */
export function podPorts(name: string): ContainerPort[] {
  const ports: ContainerPort[] = [
    { name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' },
    { name: 'serve-81-tcp', containerPort: 81, protocol: 'TCP' },
    { name: 'serve-80-udp', containerPort: 80, protocol: 'UDP' },
  ];
  if (name === 'b') ports.push({ name: 'alt-tcp', containerPort: 81, protocol: 'TCP' });
  if (name === 'c') ports.push({ name: 'alt-tcp', containerPort: 80, protocol: 'TCP' });
  return ports;
}

// ------------------------------------------------------------------ prober

type ProbeResult = string; // "ok", or why not: "timeout", "econnrefused", ...

class Prober {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #pending = new Map<number, { resolve: (r: ProbeResult[]) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  #nextId = 1;
  #stderr = '';
  #ready: Promise<void>;
  #exited: string | undefined;

  constructor(
    readonly pod: string,
    netns: Netns,
  ) {
    this.#child = spawn('nsenter', [`--net=${netns.path}`, PYTHON, '-u', PROBER], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stderr.on('data', (d: Buffer) => (this.#stderr = (this.#stderr + d.toString()).slice(-4000)));
    this.#child.stdin.on('error', () => undefined);
    const lines = createInterface({ input: this.#child.stdout });
    let onReady: () => void = () => undefined;
    let onFail: (e: Error) => void = () => undefined;
    this.#ready = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onFail = reject;
    });
    const fail = (why: string) => {
      this.#exited = why;
      const err = new Error(`prober of ${pod} ${why}: ${this.#stderr.trim()}`);
      onFail(err);
      for (const p of this.#pending.values()) {
        clearTimeout(p.timer);
        p.reject(err);
      }
      this.#pending.clear();
    };
    this.#child.on('error', (e) => fail(`could not start (${e.message})`));
    this.#child.on('exit', (code, signal) => fail(`exited (${signal ?? code})`));
    lines.on('line', (line) => {
      let msg: { ready?: boolean; id?: number; results?: ProbeResult[]; error?: string };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return;
      }
      if (msg.ready) return onReady();
      const p = msg.id === undefined ? undefined : this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id!);
      clearTimeout(p.timer);
      if (msg.results) p.resolve(msg.results);
      else p.reject(new Error(`prober of ${pod}: ${msg.error ?? 'bad reply'}`));
    });
  }

  ready(timeoutMs = 10_000): Promise<void> {
    return Promise.race([
      this.#ready,
      new Promise<void>((_, reject) => setTimeout(() => reject(new Error(`prober of ${this.pod} not ready after ${timeoutMs} ms: ${this.#stderr}`)), timeoutMs).unref()),
    ]);
  }

  /** Runs the probes at once; results in the same order. */
  run(probes: Array<[string, number, string]>, timeoutMs: number): Promise<ProbeResult[]> {
    if (this.#exited) return Promise.reject(new Error(`prober of ${this.pod} ${this.#exited}`));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`prober of ${this.pod} did not answer within ${timeoutMs + 5000} ms`));
      }, timeoutMs + 5000);
      this.#pending.set(id, { resolve, reject, timer });
      this.#child.stdin.write(`${JSON.stringify({ id, timeout_ms: timeoutMs, probes })}\n`);
    });
  }

  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}

// ------------------------------------------------------------------ matrices

/** What the harness expects of one probe kind: a cell is null when not checked. */
export interface Expectation {
  probe: Probe;
  matrix: Array<Array<boolean | null>>;
}

export interface Observation {
  probe: Probe;
  /** results[from][to]: "ok" or the failure. */
  results: ProbeResult[][];
}

export function probeName(p: Probe): string {
  return `${p.protocol}/${p.port} over IPv${p.family}`;
}

export interface Comparison {
  wrong: number;
  /** Expected denied, observed connected. */
  leaked: number;
  /** Expected allowed, observed failed. */
  blocked: number;
}

export function compare(expected: readonly Expectation[], observed: readonly Observation[]): Comparison {
  const c: Comparison = { wrong: 0, leaked: 0, blocked: 0 };
  expected.forEach((e, k) => {
    const o = observed[k]!;
    e.matrix.forEach((row, i) =>
      row.forEach((want, j) => {
        if (want === null) return;
        const got = o.results[i]![j] === 'ok';
        if (got === want) return;
        c.wrong += 1;
        if (got) c.leaked += 1;
        else c.blocked += 1;
      }),
    );
  });
  return c;
}

function grid(names: readonly string[], cell: (i: number, j: number) => string): string[] {
  const w = Math.max(...names.map((n) => n.length)) + 1;
  const lines = [['-'.padEnd(w), ...names.map((n) => n.padEnd(w))].join('')];
  names.forEach((n, i) => lines.push([n.padEnd(w), ...names.map((_, j) => cell(i, j).padEnd(w))].join('')));
  return lines;
}

/**
 * Upstream-style report: expected and observed ('.' connected, 'X' not,
 * '?' not checked) side by side with the comparison ('.' as expected, 'X'
 * wrong), rows are the clients, columns the servers.
 */
export function formatReport(names: readonly string[], expected: readonly Expectation[], observed: readonly Observation[]): string {
  const out: string[] = [];
  expected.forEach((e, k) => {
    const o = observed[k]!;
    const one = compare([e], [o]);
    if (one.wrong === 0) return;
    const exp = grid(names, (i, j) => (e.matrix[i]![j] === null ? '?' : e.matrix[i]![j] ? '.' : 'X'));
    const obs = grid(names, (i, j) => (o.results[i]![j] === 'ok' ? '.' : 'X'));
    const cmp = grid(names, (i, j) => {
      const want = e.matrix[i]![j];
      return want === null || want === (o.results[i]![j] === 'ok') ? '.' : 'X';
    });
    const reasons = new Map<string, number>();
    for (const row of o.results) for (const r of row) if (r !== 'ok') reasons.set(r, (reasons.get(r) ?? 0) + 1);
    out.push(
      `${probeName(e.probe)}: ${one.wrong} wrong (${one.leaked} expected denied but connected, ${one.blocked} expected allowed but failed)` +
        (reasons.size ? `; failures observed: ${[...reasons].map(([r, n]) => `${r}×${n}`).join(', ')}` : ''),
    );
    const width = exp[0]!.length + 4;
    out.push(`${'expected'.padEnd(width)}${'observed'.padEnd(width)}comparison`);
    exp.forEach((line, i) => out.push(`${line.padEnd(width)}${obs[i]!.padEnd(width)}${cmp[i]}`));
    out.push('');
  });
  return out.join('\n');
}

// ------------------------------------------------------------------ addresses

function formatIp(family: Family, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((value >> s) & 0xffffn).toString(16));
  return groups.join(':');
}

/** The smallest prefix holding every address given (all of one family). */
export function coveringPrefix(ips: readonly string[]): string {
  const parsed = ips.map((ip) => parseIp(ip) ?? { family: 0 as const, value: 0n });
  const family = parsed[0]?.family;
  if (family !== 4 && family !== 6) throw new Error(`no addresses, or not IPs: ${ips.join(', ')}`);
  if (parsed.some((p) => p.family !== family)) throw new Error(`mixed families: ${ips.join(', ')}`);
  const bits = family === 4 ? 32 : 128;
  let len = bits;
  const first = parsed[0]!.value;
  for (const p of parsed) while (len > 0 && p.value >> BigInt(bits - len) !== first >> BigInt(bits - len)) len -= 1;
  const base = len === 0 ? 0n : (first >> BigInt(bits - len)) << BigInt(bits - len);
  return `${formatIp(family, base)}/${len}`;
}

// ------------------------------------------------------------------ cluster

export interface ClusterPod {
  key: PodKey;
  namespace: string;
  name: string;
  labels: Labels;
  ports: ContainerPort[];
  ips: Partial<Record<Family, string>>;
  netns: Netns;
  prober: Prober;
}

export interface WaitResult {
  ok: boolean;
  observed: Observation[];
  rounds: number;
  ms: number;
}

interface ManifestStatus {
  file: string;
  ok: boolean;
  error?: string;
  objects: number;
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class NetpolCluster {
  readonly node: TestNode;
  readonly opts: ClusterOptions;
  readonly pods: ClusterPod[] = [];
  readonly #nsLabels = new Map<string, Labels>();
  readonly #baselinePodLabels = new Map<PodKey, Labels>();
  readonly #baselineNsLabels = new Map<string, Labels>();
  readonly #policyFiles = new Set<string>();

  private constructor(cleanup: Cleanup, opts: ClusterOptions) {
    this.opts = opts;
    this.node = new TestNode(cleanup, { podCidr: opts.podCidr, nodeIp: opts.nodeIp });
  }

  /** Node, manifests, agent, 9 pods through sluice-cni, 9 probers ready. */
  static async start(cleanup: Cleanup, opts: Partial<ClusterOptions> = {}): Promise<NetpolCluster> {
    const c = new NetpolCluster(cleanup, { ...DEFAULT_OPTIONS, ...opts });
    const node = c.node;
    for (const ns of NAMESPACES) {
      c.#nsLabels.set(ns, { ns });
      c.#baselineNsLabels.set(ns, { ns });
      c.#writeNamespace(ns);
    }
    const planned: Array<Omit<ClusterPod, 'ips' | 'netns' | 'prober'>> = [];
    for (const ns of NAMESPACES) {
      for (const name of POD_NAMES) {
        const key = `${ns}/${name}` as PodKey;
        const p = { key, namespace: ns, name, labels: { pod: name }, ports: podPorts(name) };
        planned.push(p);
        c.#baselinePodLabels.set(key, p.labels);
        c.#writePod(p);
      }
    }
    // Manifests first: the agent loads the directory before it serves ADD.
    await node.start();
    for (const p of planned) {
      const netns = node.podNetns(cleanup);
      const containerId = `ctr-${p.namespace}-${p.name}`;
      const conf = node.conf();
      const r = cni({ command: 'ADD', containerId, netns: netns.path, ifname: 'eth0', args: podArgs(p.namespace, p.name), config: conf });
      if (r.status !== 0) throw new Error(`CNI ADD of ${p.key} failed (${r.status}): ${r.stdout}\n${node.log().slice(-3000)}`);
      cleanup.add(() => void cni({ command: 'DEL', containerId, netns: netns.path, ifname: 'eth0', args: podArgs(p.namespace, p.name), config: conf }));
      const ips: Partial<Record<Family, string>> = {};
      for (const { address } of (r.json?.ips ?? []) as Array<{ address: string }>) {
        const ip = address.split('/')[0]!;
        ips[ip.includes(':') ? 6 : 4] = ip;
      }
      if (!ips[4] || !ips[6]) throw new Error(`CNI ADD of ${p.key} did not return an IPv4 and an IPv6 address: ${r.stdout}`);
      const prober = new Prober(p.key, netns);
      cleanup.add(() => prober.kill());
      c.pods.push({ ...p, ips, netns, prober });
    }
    await Promise.all(c.pods.map((p) => p.prober.ready()));
    return c;
  }

  get names(): string[] {
    return this.pods.map((p) => p.key);
  }

  pod(key: PodKey): ClusterPod {
    const p = this.pods.find((q) => q.key === key);
    if (!p) throw new Error(`no pod ${key}`);
    return p;
  }

  /** The model's view of the cluster as it stands (labels as last written). */
  world(): World {
    return {
      namespaces: NAMESPACES.map((name) => ({ name, labels: { ...this.#nsLabels.get(name), 'kubernetes.io/metadata.name': name } })),
      pods: this.pods.map(
        (p): ModelPod => ({ namespace: p.namespace, name: p.name, labels: p.labels, ports: p.ports, ips: Object.values(p.ips) }),
      ),
    };
  }

  context(): CaseContext {
    const ip = (key: PodKey, family: Family = 4) => {
      const a = this.pod(key).ips[family];
      if (!a) throw new Error(`${key} has no IPv${family} address`);
      return a;
    };
    return {
      ip,
      host: (key, family = 4) => `${ip(key, family)}/${family === 4 ? 32 : 128}`,
      podsPrefix: (family = 4) => coveringPrefix(this.pods.map((p) => ip(p.key, family))),
    };
  }

  // -------------------------------------------------------------- manifests

  /** Atomic (write aside, rename into place): the agent never reads a half-written file. */
  #write(file: string, text: string): void {
    const tmp = join(this.node.manifests, `.${file}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, join(this.node.manifests, file));
  }

  #writeNamespace(ns: string): void {
    this.#write(`ns-${ns}.yaml`, stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { ...this.#nsLabels.get(ns) } } }));
  }

  #writePod(p: Pick<ClusterPod, 'namespace' | 'name' | 'labels' | 'ports'>): void {
    this.#write(
      `pod-${p.namespace}-${p.name}.yaml`,
      stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: p.name, namespace: p.namespace, labels: { ...p.labels } },
        spec: { containers: [{ name: 'prober', image: 'sluice.test/prober', ports: p.ports.map((x) => ({ ...x })) }] },
      }),
    );
  }

  setPodLabels(key: PodKey, labels: Labels): void {
    const p = this.pod(key);
    p.labels = { ...labels };
    this.#writePod(p);
  }

  setNamespaceLabels(ns: string, labels: Labels): void {
    this.#nsLabels.set(ns, { ...labels });
    this.#writeNamespace(ns);
  }

  /** Writes (or rewrites) a policy file; returns its file name. */
  writePolicy(file: string, text: string): string {
    this.#write(file, text);
    this.#policyFiles.add(file);
    return file;
  }

  removePolicy(file: string): void {
    rmSync(join(this.node.manifests, file), { force: true });
    this.#policyFiles.delete(file);
  }

  /** The agent's own account of each manifest file (`sluice status -o json`). */
  async manifestStatus(): Promise<ManifestStatus[]> {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [SLUICE, 'status', '-o', 'json', '--run-dir', this.node.runDir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (c) => resolve({ code: c, stdout: out, stderr: err }));
    });
    try {
      return (JSON.parse(stdout) as { manifests: ManifestStatus[] }).manifests;
    } catch {
      throw new Error(`sluice status failed (${code}): ${stderr || stdout}`);
    }
  }

  /** Polls `sluice status` until the file is reported as rejected (or accepted). */
  async waitForManifest(file: string, want: 'rejected' | 'applied', deadlineMs = this.opts.deadlineMs): Promise<ManifestStatus> {
    const start = Date.now();
    let last: ManifestStatus | undefined;
    for (;;) {
      last = (await this.manifestStatus()).find((m) => m.file === file);
      if (last && last.ok === (want === 'applied')) return last;
      if (Date.now() - start >= deadlineMs) {
        throw new Error(`the agent did not report ${file} as ${want} within ${deadlineMs} ms; its status: ${JSON.stringify(last ?? 'absent')}`);
      }
      await delay(this.opts.pollMs);
    }
  }

  /** Back to the baseline: no policy file, baseline labels, and the matrix all-allowed again. */
  async reset(families: readonly Family[] = [4, 6]): Promise<void> {
    for (const f of [...this.#policyFiles]) this.removePolicy(f);
    for (const p of this.pods) {
      const base = this.#baselinePodLabels.get(p.key)!;
      if (JSON.stringify(p.labels) !== JSON.stringify(base)) this.setPodLabels(p.key, base);
    }
    for (const [ns, base] of this.#baselineNsLabels) {
      if (JSON.stringify(this.#nsLabels.get(ns)) !== JSON.stringify(base)) this.setNamespaceLabels(ns, base);
    }
    const probes = families.flatMap((family) => [80, 81].map((port): Probe => ({ protocol: 'TCP', port, family })).concat({ protocol: 'UDP', port: 80, family }));
    await this.expectMatrix(this.expect([], probes), 'reset: no policy left, the matrix must be all-allowed again');
  }

  // -------------------------------------------------------------- probing

  /** The model's matrices for these policies, with the loopback rule applied. */
  expect(policies: readonly Policy[], probes: readonly Probe[]): Expectation[] {
    const world = this.world();
    return probes.map((probe) => ({
      probe,
      matrix: expectedMatrix(world, policies, probe).map((row, i) =>
        row.map((cell, j) => (i !== j || this.opts.loopback === 'model' ? cell : this.opts.loopback === 'allowed' ? true : null)),
      ),
    }));
  }

  /** One round: every pod probes every pod on every probe kind, all at once. */
  async probe(probes: readonly Probe[]): Promise<Observation[]> {
    const perPod = await Promise.all(
      this.pods.map((from) => {
        const list: Array<[string, number, string]> = [];
        for (const pr of probes) {
          for (const to of this.pods) {
            const ip = to.ips[pr.family];
            if (!ip) throw new Error(`${to.key} has no IPv${pr.family} address`);
            list.push([ip, pr.port, pr.protocol.toLowerCase()]);
          }
        }
        return from.prober.run(list, this.opts.probeTimeoutMs);
      }),
    );
    const n = this.pods.length;
    return probes.map((probe, k) => ({ probe, results: perPod.map((r) => r.slice(k * n, (k + 1) * n)) }));
  }

  /** Probes until the matrix matches or the deadline passes. */
  async waitForMatrix(expected: readonly Expectation[], deadlineMs = this.opts.deadlineMs): Promise<WaitResult> {
    const probes = expected.map((e) => e.probe);
    const start = Date.now();
    let rounds = 0;
    for (;;) {
      const roundStart = Date.now();
      const observed = await this.probe(probes);
      rounds += 1;
      if (compare(expected, observed).wrong === 0) return { ok: true, observed, rounds, ms: Date.now() - start };
      if (Date.now() - start >= deadlineMs) return { ok: false, observed, rounds, ms: Date.now() - start };
      await delay(Math.max(0, this.opts.pollMs - (Date.now() - roundStart)));
    }
  }

  /** waitForMatrix, throwing a readable report when it never matched. */
  async expectMatrix(expected: readonly Expectation[], what: string, deadlineMs = this.opts.deadlineMs): Promise<WaitResult> {
    const r = await this.waitForMatrix(expected, deadlineMs);
    if (!r.ok) throw new Error(this.#failure(what, expected, r.observed, `after ${r.rounds} rounds in ${r.ms} ms`));
    return r;
  }

  /** Probes for windowMs; every round must match (a change must not happen). */
  async holdMatrix(expected: readonly Expectation[], what: string, windowMs: number): Promise<number> {
    const probes = expected.map((e) => e.probe);
    const start = Date.now();
    let rounds = 0;
    do {
      const roundStart = Date.now();
      const observed = await this.probe(probes);
      rounds += 1;
      if (compare(expected, observed).wrong !== 0) throw new Error(this.#failure(what, expected, observed, `in round ${rounds}, ${Date.now() - start} ms in`));
      await delay(Math.max(0, this.opts.pollMs - (Date.now() - roundStart)));
    } while (Date.now() - start < windowMs);
    return rounds;
  }

  #failure(what: string, expected: readonly Expectation[], observed: readonly Observation[], when: string): string {
    const c = compare(expected, observed);
    return [
      `${what}: reachability differs from the model ${when}: ${c.wrong} wrong (${c.leaked} expected denied but connected, ${c.blocked} expected allowed but failed)`,
      `rows: client, columns: server; . connects, X does not, ? not checked (loopback: ${this.opts.loopback})`,
      '',
      formatReport(this.names, expected, observed),
    ].join('\n');
  }
}
