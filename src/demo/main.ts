// `make demo`: a self-contained scenario in network namespaces on this
// machine, standalone mode: a node running the agent, a pod created with the
// real sluice-cni, and a "world" test host with a real DNS server (nsd) and
// web servers, reached through the node. The world side uses only addresses
// of 198.18.0.0/15 (the benchmarking range, RFC 2544), assigned inside the
// demo's own namespaces; no namespace has a default route, so no packet can
// reach a real network. Everything it creates carries the "sdemo" prefix (or
// lives under a temp dir) and is removed on exit, also on failure or Ctrl-C.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isBpffs } from '../datapath/index.js';
import { nodeEnvOf, nodeFlagsOf } from '../config/index.js';

const PREFIX = 'sdemo';
const NODE_NS = `${PREFIX}-node`;
const WORLD_NS = `${PREFIX}-world`;
const POD = 'builder';
const POD_NS = `${PREFIX}-${POD}`;
const NODE_IP = '10.251.255.1';
const POD_CIDR = '10.251.0.0/24';
// The node <-> world link, and the world's hosts (on its loopback).
const NODE_WORLD_IP = '198.18.0.1';
const WORLD_NODE_IP = '198.18.0.2';
const WORLD_HOSTS = '198.18.1.0/24';
const DNS_IP = '198.18.1.53';
const API_IP = '198.18.1.10';
const BLOCKED_IP = '198.18.1.11';
const ZONE = 'demo.test';
const ZONE_TTL_SECONDS = 30;
/** A dropped SYN is retried after 1 s; by then the verdict is clear. */
const HTTP_TIMEOUT_MS = 1000;
const POLICY_APPLY_TIMEOUT_MS = 2000;
// The agent's defaults, passed explicitly because the story explains them.
const FQDN_MIN_TTL = '60s';
const FQDN_GRACE = '10s';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin');
const work = mkdtempSync(join(tmpdir(), `${PREFIX}-`));
const runDir = join(work, 'run');
const stateDir = join(work, 'state');
const manifests = join(work, 'manifests');
const bpffs = `/sys/fs/bpf/${PREFIX}`;
const started = Date.now();

const cleanups: Array<() => void> = [];
const tty = process.stdout.isTTY;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s: string) => process.stdout.write(`\n${bold(`==> ${s}`)}\n`);
const show = (s: string) => process.stdout.write(`${s.replace(/^(?=.)/gm, '    ')}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Quick set-up and clean-up commands (ip, mount): synchronous, clean-up runs in a signal handler. */
function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function inNs(ns: string, cmd: string, args: string[]): string {
  return run('nsenter', [`--net=/var/run/netns/${ns}`, cmd, ...args]);
}

/**
 * Everything that may take a while runs asynchronously, so that Ctrl-C is
 * handled at once instead of after the current step.
 */
const inFlight = new Set<ChildProcess>();
function exec(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    inFlight.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => {
      inFlight.delete(child);
      reject(err);
    });
    child.on('close', (code, signal) => {
      inFlight.delete(child);
      resolve({ status: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.on('error', () => {}); // a command that does not read its input
    child.stdin.end(opts.input ?? '');
  });
}
function execInNs(ns: string, cmd: string, args: string[]): ReturnType<typeof exec> {
  return exec('nsenter', [`--net=/var/run/netns/${ns}`, cmd, ...args]);
}
async function sluice(args: string[]): Promise<string> {
  const r = await exec(process.execPath, [join(BIN, 'sluice'), ...args, '--run-dir', runDir]);
  if (r.status !== 0) throw new Error(`sluice ${args.join(' ')} failed (exit ${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

function addNetns(name: string): void {
  if (existsSync(`/var/run/netns/${name}`)) run('ip', ['netns', 'del', name]);
  run('ip', ['netns', 'add', name]);
  cleanups.push(() => run('ip', ['netns', 'del', name]));
  inNs(name, 'ip', ['link', 'set', 'lo', 'up']);
}

const STOP_GRACE_MS = 2000;
const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
/** Gone, or a zombie: it has exited (and so have the children it waits for, as nsd does). */
function exited(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').startsWith('Z');
  } catch {
    return true;
  }
}
/** SIGTERM, then SIGKILL after STOP_GRACE_MS. Synchronous: it also runs from a signal handler. */
function stopSync(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const deadline = Date.now() + STOP_GRACE_MS;
  while (!exited(child.pid) && Date.now() < deadline) sleepSync(10);
  child.kill('SIGKILL');
}

/** A long-running process inside a netns (nsenter execs it: same pid), stopped at cleanup. */
function spawnInNs(ns: string, name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const log = openSync(join(work, `${name}.log`), 'a');
  const child = spawn('nsenter', [`--net=/var/run/netns/${ns}`, cmd, ...args], { stdio: ['ignore', log, log], env });
  closeSync(log);
  cleanups.push(() => stopSync(child));
  return child;
}
async function waitFor(what: string, child: ChildProcess, logName: string, ready: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${what} did not start:\n${readFileSync(join(work, `${logName}.log`), 'utf8')}`);
    await sleep(50);
  }
}

// ------------------------------------------------------------ the world

/** nsd, authoritative for the demo zone, in the foreground (no daemon, no chroot, no privilege drop). */
async function startNsd(): Promise<void> {
  const dir = join(work, 'nsd');
  mkdirSync(dir);
  writeFileSync(
    join(dir, `${ZONE}.zone`),
    [
      `$ORIGIN ${ZONE}.`,
      `$TTL ${ZONE_TTL_SECONDS}`,
      `@        IN SOA ns.${ZONE}. hostmaster.${ZONE}. 1 3600 600 86400 ${ZONE_TTL_SECONDS}`,
      `@        IN NS  ns.${ZONE}.`,
      `ns       IN A   ${DNS_IP}`,
      `api      IN A   ${API_IP}`,
      `blocked  IN A   ${BLOCKED_IP}`,
      '',
    ].join('\n'),
  );
  const q = (s: string) => JSON.stringify(s);
  writeFileSync(
    join(dir, 'nsd.conf'),
    [
      'server:',
      `  ip-address: ${DNS_IP}`,
      '  port: 53',
      '  username: ""',
      '  chroot: ""',
      '  database: ""',
      `  zonesdir: ${q(dir)}`,
      `  pidfile: ${q(join(dir, 'nsd.pid'))}`,
      `  zonelistfile: ${q(join(dir, 'zone.list'))}`,
      `  xfrdfile: ${q(join(dir, 'xfrd.state'))}`,
      `  xfrdir: ${q(dir)}`,
      '  verbosity: 1',
      'remote-control:',
      '  control-enable: no',
      'zone:',
      `  name: ${ZONE}`,
      `  zonefile: ${q(`${ZONE}.zone`)}`,
      '',
    ].join('\n'),
  );
  const nsd = spawnInNs(WORLD_NS, 'nsd', 'nsd', ['-d', '-c', join(dir, 'nsd.conf')]);
  const answers = async () => (await execInNs(WORLD_NS, 'dig', ['+short', '+time=1', '+tries=1', `@${DNS_IP}`, `ns.${ZONE}`])).stdout.trim() === DNS_IP;
  await waitFor('nsd', nsd, 'nsd', answers);
}

/** Plain HTTP web servers, one per (address, port), each saying who it is. */
async function startWebServers(sites: ReadonlyArray<readonly [ip: string, port: number, name: string]>): Promise<void> {
  const script = `
    const http = require('node:http');
    const sites = ${JSON.stringify(sites)};
    let up = 0;
    for (const [ip, port, name] of sites)
      http.createServer((req, res) => res.end('hello from ' + name + ' (' + ip + ':' + port + ')\\n'))
        .listen(port, ip, () => ++up === sites.length && console.log('ready'));`;
  const web = spawnInNs(WORLD_NS, 'web', process.execPath, ['-e', script]);
  await waitFor('the web servers', web, 'web', () => readFileSync(join(work, 'web.log'), 'utf8').includes('ready'));
}

// ------------------------------------------------------------ the pod's view

/** `dig` in the pod, at the pod's resolver; returns the answer lines. */
async function podDig(name: string): Promise<string> {
  const r = await execInNs(POD_NS, 'dig', ['+noall', '+answer', '+time=2', '+tries=2', `@${DNS_IP}`, name, 'A']);
  const answer = r.stdout.trim().replace(/[ \t]+/g, ' ');
  if (r.status !== 0 || !answer) throw new Error(`dig ${name} in the pod failed: ${r.stdout}${r.stderr}`);
  return answer;
}

/** An HTTP GET from the pod: the status line and body, or how it failed. */
async function podGet(ip: string, port: number, host: string): Promise<{ ok: boolean; text: string }> {
  const script = `
    const [ip, port, host, timeout] = process.argv.slice(1);
    const req = require('node:http').get({ host: ip, port: Number(port), path: '/', headers: { host }, timeout: Number(timeout) }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => console.log('HTTP/' + res.httpVersion + ' ' + res.statusCode + ' ' + res.statusMessage + ' | ' + body.trim()));
    });
    req.on('timeout', () => { console.log('no answer within ' + timeout + ' ms'); process.exit(1); });
    req.on('error', (err) => { console.log(err.code || err.message); process.exit(1); });`;
  const r = await execInNs(POD_NS, process.execPath, ['-e', script, ip, String(port), host, String(HTTP_TIMEOUT_MS)]);
  return { ok: r.status === 0, text: r.stdout.trim() || r.stderr.trim() };
}

/** The reason of the pod's latest drop, from the flow log. */
async function lastDropReason(): Promise<string> {
  const line = (await sluice(['observe', '--pod', `demo/${POD}`, '--verdict', 'dropped', '--last', '1', '-o', 'json'])).trim();
  return line ? (JSON.parse(line) as { reason: string }).reason : '(no drop event)';
}

async function request(ip: string, port: number, host: string, label = `GET http://${host}:${port}/ (${ip})`): Promise<boolean> {
  const r = await podGet(ip, port, host);
  show(r.ok ? `${label} -> ${r.text}` : `${label} -> BLOCKED (${r.text}); datapath drop reason: ${await lastDropReason()}`);
  return r.ok;
}

// ------------------------------------------------------------ the node

/** What containerd would pass: 64 hex digits, here derived from the pod's name. */
const containerId = (pod: string) => createHash('sha256').update(`${PREFIX}/${pod}`).digest('hex');

const conf = { cniVersion: '1.1.0', name: 'sluice', type: 'sluice-cni', agentSocket: join(runDir, 'agent.sock'), stateDir, mtu: 1500 };

async function cniCall(command: string, pod: string): Promise<{ status: number; out: string }> {
  const r = await exec(join(BIN, 'sluice-cni'), [], {
    input: JSON.stringify(conf),
    env: {
      PATH: process.env.PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: containerId(pod),
      CNI_NETNS: `/var/run/netns/${PREFIX}-${pod}`,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=${pod}`,
      CNI_PATH: BIN,
    },
  });
  return { status: r.status, out: r.stdout };
}

let agent: ChildProcess | undefined;
const readyCount = () => (existsSync(join(work, 'agent.log')) ? readFileSync(join(work, 'agent.log'), 'utf8').split('"agent ready"').length - 1 : 0);

async function startAgent(): Promise<void> {
  const before = readyCount();
  agent = spawnInNs(NODE_NS, 'agent', process.execPath, [
    ...nodeFlagsOf(join(BIN, 'sluice')),
    join(BIN, 'sluice'),
    'agent',
    '--standalone',
    manifests,
    '--pod-cidr',
    POD_CIDR,
    '--state-dir',
    stateDir,
    '--run-dir',
    runDir,
    '--bpffs',
    bpffs,
    '--node-name',
    NODE_NS,
    '--dns-trusted',
    DNS_IP,
    '--fqdn-min-ttl',
    FQDN_MIN_TTL,
    '--fqdn-grace',
    FQDN_GRACE,
  ], { ...process.env, ...nodeEnvOf(join(BIN, 'sluice')) });
  await waitFor('the agent', agent, 'agent', () => readyCount() > before);
}
async function stopAgent(signal: NodeJS.Signals): Promise<void> {
  if (!agent || agent.exitCode !== null) return;
  const exited = new Promise((r) => agent!.once('exit', r));
  agent.kill(signal);
  await exited;
}

interface Condition {
  kind: string;
  policy: string;
  accepted: boolean;
  message: string;
}
async function waitForPolicy(kind: string, policy: string): Promise<void> {
  const deadline = Date.now() + POLICY_APPLY_TIMEOUT_MS;
  for (;;) {
    // Not sluice(): status exits 1 when a policy is rejected, and that is an answer here.
    const s = JSON.parse((await exec(process.execPath, [join(BIN, 'sluice'), 'status', '-o', 'json', '--run-dir', runDir])).stdout) as { policies?: Condition[] };
    const c = s.policies?.find((p) => p.kind === kind && p.policy === policy);
    if (c?.accepted) return;
    if (c) throw new Error(`${kind} ${policy} was rejected: ${c.message}`);
    if (Date.now() > deadline) throw new Error(`${kind} ${policy} not applied within ${POLICY_APPLY_TIMEOUT_MS} ms`);
    await sleep(50);
  }
}

async function main(): Promise<void> {
  cleanups.push(() => rmSync(work, { recursive: true, force: true }));
  if (process.getuid?.() !== 0) throw new Error('the demo needs root (network namespaces, eBPF)');
  for (const tool of ['nsd', 'dig']) {
    if ((await exec('sh', ['-c', `command -v ${tool}`])).status !== 0) throw new Error(`${tool} is missing: run \`make deps\` (packages nsd, bind9-dnsutils)`);
  }
  if (!isBpffs('/sys/fs/bpf')) {
    run('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
    cleanups.push(() => run('umount', ['/sys/fs/bpf']));
  }
  // A crashed earlier run's pins would be adopted; start clean.
  rmSync(bpffs, { recursive: true, force: true });
  cleanups.push(() => rmSync(bpffs, { recursive: true, force: true }));

  say(`A test host "world" (netns ${WORLD_NS}) behind a node (netns ${NODE_NS}): a real DNS server and web servers`);
  addNetns(NODE_NS);
  addNetns(WORLD_NS);
  inNs(NODE_NS, 'ip', ['addr', 'add', `${NODE_IP}/32`, 'dev', 'lo']);
  inNs(NODE_NS, 'ip', ['link', 'add', 'world0', 'netns', NODE_NS, 'type', 'veth', 'peer', 'name', 'node0', 'netns', WORLD_NS]);
  inNs(NODE_NS, 'ip', ['addr', 'add', `${NODE_WORLD_IP}/24`, 'dev', 'world0']);
  inNs(NODE_NS, 'ip', ['link', 'set', 'world0', 'up']);
  inNs(NODE_NS, 'ip', ['route', 'add', WORLD_HOSTS, 'via', WORLD_NODE_IP]);
  inNs(WORLD_NS, 'ip', ['addr', 'add', `${WORLD_NODE_IP}/24`, 'dev', 'node0']);
  inNs(WORLD_NS, 'ip', ['link', 'set', 'node0', 'up']);
  for (const ip of [DNS_IP, API_IP, BLOCKED_IP]) inNs(WORLD_NS, 'ip', ['addr', 'add', `${ip}/32`, 'dev', 'lo']);
  inNs(WORLD_NS, 'ip', ['route', 'add', POD_CIDR, 'via', NODE_WORLD_IP]);
  await startNsd();
  await startWebServers([
    [API_IP, 443, `api.${ZONE}`],
    [API_IP, 80, `api.${ZONE}`],
    [BLOCKED_IP, 443, `blocked.${ZONE}`],
  ]);
  show(`nsd on ${DNS_IP}:53, authoritative for ${ZONE} (TTL ${ZONE_TTL_SECONDS}s): api.${ZONE} A ${API_IP}, blocked.${ZONE} A ${BLOCKED_IP}`);
  show(`web servers (plain HTTP): ${API_IP}:443, ${API_IP}:80, ${BLOCKED_IP}:443`);
  show(`the world's addresses are in 198.18.0.0/15 (benchmarking range) and exist only in these namespaces;`);
  show(`the node routes ${WORLD_HOSTS} to the world and has no default route`);

  say(`The node (address ${NODE_IP}) runs \`sluice agent\` in standalone mode`);
  mkdirSync(manifests, { recursive: true });
  writeFileSync(
    join(manifests, 'demo.yaml'),
    ['apiVersion: v1', 'kind: Namespace', 'metadata: { name: demo }', '---', 'apiVersion: v1', 'kind: Pod', `metadata: { name: ${POD}, namespace: demo, labels: { app: ${POD} } }`, ''].join('\n'),
  );
  await startAgent();
  show(`pod CIDR ${POD_CIDR}, trusted resolver (--dns-trusted) ${DNS_IP}, state in ${stateDir}, maps pinned in ${bpffs}`);

  say('A pod created the way containerd does it: the real sluice-cni binary, CNI ADD');
  addNetns(POD_NS);
  const t0 = process.hrtime.bigint();
  const added = await cniCall('ADD', POD);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (added.status !== 0) throw new Error(`ADD ${POD} failed: ${added.out}`);
  const ips = (JSON.parse(added.out) as { ips: Array<{ address: string }> }).ips.map((i) => i.address);
  show(`demo/${POD}: ${ips.join(', ')}  (ADD took ${ms.toFixed(1)} ms, policy programmed before it returned)`);
  show((await sluice(['endpoints'])).trimEnd());
  show('no policy selects it yet, so its egress is open:');
  await request(BLOCKED_IP, 443, `blocked.${ZONE}`);

  const policy = [
    'apiVersion: sluice.dev/v1alpha1',
    'kind: FQDNPolicy',
    'metadata: { name: allow-api, namespace: demo }',
    'spec:',
    `  podSelector: { matchLabels: { app: ${POD} } }`,
    '  egress:',
    `  - toFQDNs: [ { matchName: api.${ZONE} } ]`,
    '    ports: [ { port: 443, protocol: TCP } ]',
    '',
  ].join('\n');
  say(`An FQDNPolicy: demo/${POD} may reach api.${ZONE} on TCP/443, and nothing else`);
  show(policy.trimEnd());
  writeFileSync(join(manifests, 'allow-api.yaml'), policy);
  await waitForPolicy('FQDNPolicy', 'demo/allow-api');
  show('applied (the directory is watched). Before any lookup the address is not allowed:');
  if (await request(API_IP, 443, `api.${ZONE}`)) throw new Error(`api.${ZONE}:443 should be blocked before the lookup`);

  say(`The pod resolves api.${ZONE}: its query to ${DNS_IP} is intercepted by the datapath and answered by the node's DNS proxy`);
  show(`dig @${DNS_IP} api.${ZONE}: ${await podDig(`api.${ZONE}`)}`);
  show(`the proxy allowed ${API_IP} for the rule before releasing the answer, so the first packet passes:`);
  if (!(await request(API_IP, 443, `api.${ZONE}`))) throw new Error(`api.${ZONE}:443 should be allowed after the lookup`);
  if (await request(API_IP, 80, `api.${ZONE}`, `GET http://api.${ZONE}:80/ (same address, a port the rule does not allow)`)) throw new Error(`api.${ZONE}:80 should be blocked`);

  say(`A name no rule matches: blocked.${ZONE} resolves (dns: AllowAll) but opens nothing`);
  show(`dig @${DNS_IP} blocked.${ZONE}: ${await podDig(`blocked.${ZONE}`)}`);
  if (await request(BLOCKED_IP, 443, `blocked.${ZONE}`)) throw new Error(`blocked.${ZONE} should be blocked`);

  say('What the proxy learned: `sluice fqdn`');
  show((await sluice(['fqdn'])).trimEnd());
  show(`TTL LEFT = max(TTL ${ZONE_TTL_SECONDS}s, --fqdn-min-ttl ${FQDN_MIN_TTL}) + --fqdn-grace ${FQDN_GRACE}, counted from the last answer`);

  say(`The flow log: \`sluice observe --pod demo/${POD}\``);
  show((await sluice(['observe', '--pod', `demo/${POD}`])).trimEnd());

  say('`sluice status`: the policy\'s Accepted condition and the DNS proxy\'s counters');
  show((await sluice(['status'])).trimEnd());

  say('Restart safety: SIGKILL the agent; the pinned maps and attached programs keep enforcing');
  await stopAgent('SIGKILL');
  show('agent down:');
  const stillAllowed = await podGet(API_IP, 443, `api.${ZONE}`);
  show(`GET http://api.${ZONE}:443/ (${API_IP}) -> ${stillAllowed.ok ? `still allowed: ${stillAllowed.text}` : `BLOCKED (learned allow lost!) ${stillAllowed.text}`}`);
  const stillBlocked = await podGet(BLOCKED_IP, 443, `blocked.${ZONE}`);
  show(`GET http://blocked.${ZONE}:443/ (${BLOCKED_IP}) -> ${stillBlocked.ok ? `REACHABLE (policy lost!) ${stillBlocked.text}` : `still BLOCKED (${stillBlocked.text})`}`);
  if (!stillAllowed.ok || stillBlocked.ok) throw new Error('enforcement changed while the agent was down');
  await startAgent();
  show(`agent restarted; what it had learned, restored from its journal (\`sluice fqdn --pod demo/${POD}\`):`);
  show((await sluice(['fqdn', '--pod', `demo/${POD}`])).trimEnd());
  show(`and DNS resolves again: ${await podDig(`api.${ZONE}`)}`);

  say('CNI DEL: nothing is left behind');
  if ((await cniCall('DEL', POD)).status !== 0) throw new Error(`DEL ${POD} failed`);
  const left = inNs(NODE_NS, 'ip', ['-o', 'link']).split('\n').filter((l) => / slc[0-9a-f]{11}[@:]/.test(l));
  show(`host veths left: ${left.length}; endpoints: ${(await sluice(['endpoints', '-o', 'json'])).trim()}`);
  say('That was standalone mode. On a cluster: `make image`, load build/image/sluice.tar on each node, `kubectl apply -f deploy/` (docs/kubernetes.md)');
}

let cleaningUp = false;
function cleanup(): void {
  if (cleaningUp) return;
  cleaningUp = true;
  agent?.kill('SIGKILL');
  for (const child of inFlight) child.kill('SIGKILL');
  for (const c of cleanups.splice(0).reverse()) {
    try {
      c();
    } catch {
      // keep cleaning
    }
  }
}

for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  process.on(signal, () => {
    cleanup();
    process.exit(code);
  });
}

main().then(
  async () => {
    await stopAgent('SIGTERM');
    say('Cleaning up');
    cleanup();
    show(`done in ${((Date.now() - started) / 1000).toFixed(1)} s: no namespaces, links, pins or processes left behind`);
  },
  (err: unknown) => {
    cleanup();
    process.stderr.write(`demo failed: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
