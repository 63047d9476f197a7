// `make demo`: a self-contained scenario in network namespaces on this
// machine, standalone mode. Only addresses assigned inside its own namespaces
// are used. Everything it creates carries the "sdemo" prefix (or lives under a
// temp dir) and is removed on exit, also on failure or Ctrl-C.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isBpffs } from '../datapath/index.js';

const PREFIX = 'sdemo';
const NODE_NS = `${PREFIX}-node`;
const NODE_IP = '10.251.255.1';
const POD_CIDR = '10.251.0.0/24';
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin');
const work = mkdtempSync(join(tmpdir(), `${PREFIX}-`));
const runDir = join(work, 'run');
const stateDir = join(work, 'state');
const manifests = join(work, 'manifests');
const bpffs = `/sys/fs/bpf/${PREFIX}`;

const cleanups: Array<() => void> = [];
const tty = process.stdout.isTTY;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s: string) => process.stdout.write(`\n${bold(`==> ${s}`)}\n`);
const show = (s: string) => process.stdout.write(`${s.replace(/^/gm, '    ')}\n`);

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function inNs(ns: string, cmd: string, args: string[]): string {
  return run('nsenter', [`--net=/var/run/netns/${ns}`, cmd, ...args]);
}
function ping(ns: string, ip: string): boolean {
  return spawnSync('nsenter', [`--net=/var/run/netns/${ns}`, 'ping', '-c', '1', '-W', '1', '-q', ip]).status === 0;
}
function sluice(args: string[]): string {
  return run(process.execPath, [join(BIN, 'sluice'), ...args, '--run-dir', runDir]);
}

function addNetns(name: string): void {
  if (existsSync(`/var/run/netns/${name}`)) run('ip', ['netns', 'del', name]);
  run('ip', ['netns', 'add', name]);
  cleanups.push(() => run('ip', ['netns', 'del', name]));
}

const conf = { cniVersion: '1.1.0', name: 'sluice', type: 'sluice-cni', agentSocket: join(runDir, 'agent.sock'), stateDir, mtu: 1500 };

function cniCall(command: string, pod: string): { status: number; out: string } {
  const r = spawnSync(join(BIN, 'sluice-cni'), [], {
    input: JSON.stringify(conf),
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: `${PREFIX}-${pod}`,
      CNI_NETNS: `/var/run/netns/${PREFIX}-${pod}`,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=${pod}`,
      CNI_PATH: BIN,
    },
  });
  return { status: r.status ?? 1, out: r.stdout };
}

let agent: ChildProcess | undefined;
const readyCount = () => (existsSync(join(work, 'agent.log')) ? readFileSync(join(work, 'agent.log'), 'utf8').split('"agent ready"').length - 1 : 0);

async function startAgent(): Promise<void> {
  const before = readyCount();
  const log = openSync(join(work, 'agent.log'), 'a');
  agent = spawn('nsenter', [`--net=/var/run/netns/${NODE_NS}`, process.execPath, join(BIN, 'sluice'), 'agent', '--standalone', manifests, '--pod-cidr', POD_CIDR, '--state-dir', stateDir, '--run-dir', runDir, '--bpffs', bpffs, '--node-name', NODE_NS], {
    stdio: ['ignore', log, log],
  });
  const deadline = Date.now() + 15_000;
  while (readyCount() === before) {
    if (agent.exitCode !== null || Date.now() > deadline) throw new Error(`agent did not start:\n${readFileSync(join(work, 'agent.log'), 'utf8')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
async function stopAgent(signal: NodeJS.Signals): Promise<void> {
  if (!agent || agent.exitCode !== null) return;
  const exited = new Promise((r) => agent!.once('exit', r));
  agent.kill(signal);
  await exited;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo needs root (network namespaces, eBPF)');
  cleanups.push(() => rmSync(work, { recursive: true, force: true }));
  if (!isBpffs('/sys/fs/bpf')) {
    run('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
    cleanups.push(() => run('umount', ['/sys/fs/bpf']));
  }
  cleanups.push(() => rmSync(bpffs, { recursive: true, force: true }));

  say(`A node (netns ${NODE_NS}, address ${NODE_IP}) running \`sluice agent\` in standalone mode`);
  addNetns(NODE_NS);
  inNs(NODE_NS, 'ip', ['link', 'set', 'lo', 'up']);
  inNs(NODE_NS, 'ip', ['addr', 'add', `${NODE_IP}/32`, 'dev', 'lo']);
  mkdirSync(manifests, { recursive: true });
  writeFileSync(
    join(manifests, 'demo.yaml'),
    [
      'apiVersion: v1',
      'kind: Namespace',
      'metadata: { name: demo }',
      '---',
      'apiVersion: v1',
      'kind: Pod',
      'metadata: { name: web, namespace: demo, labels: { app: web } }',
      'spec: { containers: [ { name: web, ports: [ { name: http, containerPort: 80 } ] } ] }',
      '---',
      'apiVersion: v1',
      'kind: Pod',
      'metadata: { name: client, namespace: demo, labels: { app: client } }',
      '',
    ].join('\n'),
  );
  await startAgent();
  cleanups.push(() => agent?.kill('SIGKILL'));
  show(`pod CIDR ${POD_CIDR}, state in ${stateDir}, maps pinned in ${bpffs}`);

  say('Two pods created the way containerd does it: the real sluice-cni binary, CNI ADD');
  for (const pod of ['web', 'client']) {
    addNetns(`${PREFIX}-${pod}`);
    const t0 = process.hrtime.bigint();
    const r = cniCall('ADD', pod);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`ADD ${pod} failed: ${r.out}`);
    const ips = (JSON.parse(r.out) as { ips: Array<{ address: string }> }).ips.map((i) => i.address);
    show(`demo/${pod}: ${ips.join(', ')}  (ADD took ${ms.toFixed(1)} ms, policy programmed before it returned)`);
  }
  show(sluice(['endpoints']).trimEnd());

  const webIp = sluice(['endpoints', '-o', 'json']).match(/"10\.251\.0\.\d+\/32"/)![0].slice(1, -4);
  say(`client -> web (${webIp}): ${ping(`${PREFIX}-client`, webIp) ? 'reachable' : 'NOT reachable'}; node -> web: ${ping(NODE_NS, webIp) ? 'reachable' : 'NOT reachable'}`);

  const policy = [
    'apiVersion: networking.k8s.io/v1',
    'kind: NetworkPolicy',
    'metadata: { name: web-http-only, namespace: demo }',
    'spec:',
    '  podSelector: { matchLabels: { app: web } }',
    '  ingress: [ { from: [ { podSelector: { matchLabels: { app: client } } } ], ports: [ { port: http } ] } ]',
    '',
  ].join('\n');
  say('A NetworkPolicy: demo/web accepts only its named port "http" (TCP/80) from app=client');
  show(policy.trimEnd());
  writeFileSync(join(manifests, 'policy.yaml'), policy);
  const deadline = Date.now() + 2000;
  while (ping(`${PREFIX}-client`, webIp) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  show(`client -> web ping (ICMP): ${ping(`${PREFIX}-client`, webIp) ? 'reachable' : 'dropped'}; node -> web: ${ping(NODE_NS, webIp) ? 'reachable (the node always reaches its pods)' : 'NOT reachable'}`);
  show('the drops, as `sluice observe --verdict dropped` shows them:');
  show(sluice(['observe', '--verdict', 'dropped', '--last', '2']).trimEnd());

  say('Restart safety: SIGKILL the agent; the pinned maps and attached programs keep enforcing');
  await stopAgent('SIGKILL');
  show(`agent down; client -> web ping: ${ping(`${PREFIX}-client`, webIp) ? 'REACHABLE (policy lost!)' : 'still dropped'}; node -> web: ${ping(NODE_NS, webIp) ? 'still reachable' : 'NOT reachable'}`);
  await startAgent();
  show('agent restarted and adopted its endpoints and policy:');
  show(sluice(['status']).trimEnd());
  unlinkSync(join(manifests, 'policy.yaml'));
  const open = Date.now() + 2000;
  while (!ping(`${PREFIX}-client`, webIp) && Date.now() < open) await new Promise((r) => setTimeout(r, 50));
  show(`policy file removed; client -> web: ${ping(`${PREFIX}-client`, webIp) ? 'reachable again' : 'NOT reachable'}`);

  say('CNI DEL for both pods: nothing is left behind');
  for (const pod of ['web', 'client']) if (cniCall('DEL', pod).status !== 0) throw new Error(`DEL ${pod} failed`);
  const left = inNs(NODE_NS, 'ip', ['-o', 'link']).split('\n').filter((l) => / slc[0-9a-f]{11}[@:]/.test(l));
  show(`host veths left: ${left.length}; endpoints: ${sluice(['endpoints', '-o', 'json']).trim()}`);
}

process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

function cleanup(): void {
  agent?.kill('SIGKILL');
  for (const c of cleanups.splice(0).reverse()) {
    try {
      c();
    } catch {
      // keep cleaning
    }
  }
}

main().then(
  async () => {
    await stopAgent('SIGTERM');
    say('Cleaning up');
    cleanup();
    show('done: no namespaces, links, pins or processes left behind');
  },
  (err: unknown) => {
    cleanup();
    process.stderr.write(`demo failed: ${(err as Error).message}\n`);
    process.exitCode = 1;
  },
);
