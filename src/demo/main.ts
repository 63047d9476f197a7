// `make demo`: a self-contained scenario in network namespaces on this
// machine. Only addresses assigned inside its own namespaces are ever used.
// Everything it creates carries the "sdemo" prefix and is removed on exit,
// also on failure or Ctrl-C.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { Datapath, DropReason, endpointCodec, reasonName } from '../datapath/index.js';
import { native } from '../native/index.js';

const PREFIX = 'sdemo';
const NODE_NS = `${PREFIX}-node`;
const POD_NS = `${PREFIX}-pod`;
const HOST_IF = `${PREFIX}-veth`;
const BPFFS = `/sys/fs/bpf/${PREFIX}`;
const NODE_IP = '10.251.0.1';
const POD_IP = '10.251.0.2';

const cleanups: Array<() => void> = [];
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const say = (s: string) => process.stdout.write(`\n${bold(`==> ${s}`)}\n`);
const show = (s: string) => process.stdout.write(`    ${s}\n`);

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function ping(): boolean {
  try {
    run('nsenter', [`--net=/var/run/netns/${POD_NS}`, 'ping', '-c', '2', '-i', '0.2', '-W', '1', '-q', NODE_IP]);
    return true;
  } catch {
    return false;
  }
}

function cleanup(): void {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      c();
    } catch {
      // keep cleaning
    }
  }
}

function bpffsMounted(): boolean {
  return readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === '/sys/fs/bpf' && l.split(' ')[2] === 'bpf');
}

function main(): void {
  if (process.getuid?.() !== 0) throw new Error('the demo needs root (network namespaces, eBPF)');
  for (const ns of [NODE_NS, POD_NS]) if (existsSync(`/var/run/netns/${ns}`)) run('ip', ['netns', 'del', ns]);
  if (!bpffsMounted()) {
    run('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
    cleanups.push(() => run('umount', ['/sys/fs/bpf']));
  }

  say('A node and a pod, each a network namespace, joined by a veth pair made by the Sluice addon');
  for (const ns of [NODE_NS, POD_NS]) {
    run('ip', ['netns', 'add', ns]);
    cleanups.push(() => run('ip', ['netns', 'del', ns]));
  }
  const n = native();
  const nodePath = `/var/run/netns/${NODE_NS}`;
  const podPath = `/var/run/netns/${POD_NS}`;
  n.linkAddVeth(nodePath, HOST_IF, 'eth0', { peerNetns: podPath, mtu: 1500 });
  n.addrAdd(nodePath, HOST_IF, `${NODE_IP}/24`);
  n.linkSet(nodePath, HOST_IF, { up: true });
  n.addrAdd(podPath, 'eth0', `${POD_IP}/24`);
  n.linkSet(podPath, 'eth0', { up: true });
  const ifindex = n.linkGet(nodePath, HOST_IF)!.ifindex;
  show(`node ${NODE_NS}: ${HOST_IF} ${NODE_IP}/24   pod ${POD_NS}: eth0 ${POD_IP}/24`);

  say('Load the datapath (maps pinned under /sys/fs/bpf/sdemo) and attach it to the host side of the veth');
  mkdirSync(BPFFS, { recursive: true });
  cleanups.push(() => rmSync(BPFFS, { recursive: true, force: true }));
  const dp = Datapath.open({ bpffs: BPFFS });
  cleanups.push(() => dp.close());
  dp.upsertEndpoint(ifindex, { identity: 1, flags: 0 });
  dp.attach(nodePath, HOST_IF);
  const events = dp.openEvents();
  cleanups.push(() => events.close());

  say(`The pod pings the node: ${ping() ? 'replies' : 'NO REPLY'}`);

  say('Flip the endpoint to drop-all in the map (no re-attach, no restart)');
  dp.upsertEndpoint(ifindex, { identity: 1, flags: endpointCodec.FLAG_DROP_ALL });
  say(`The pod pings the node: ${ping() ? 'replies' : 'no reply: dropped'}`);
  for (const e of events.drain().slice(0, 3)) {
    show(`flow event: ${reasonName(e.reason)} (${e.reason}) ${e.direction === 0 ? 'from-pod' : 'to-pod'} ${e.saddr} -> ${e.daddr} proto ${e.protocol}`);
  }

  say('Counters per verdict, read back from the per-CPU map');
  for (const r of dp.metrics()) show(`${reasonName(r.reason).padEnd(18)} ${r.direction === 0 ? 'from-pod' : 'to-pod  '} packets=${r.packets} bytes=${r.bytes}`);

  dp.upsertEndpoint(ifindex, { identity: 1, flags: 0 });
  say(`Flip it back; the pod pings the node: ${ping() ? 'replies' : 'NO REPLY'}`);
  const dropped = dp.metrics().some((r) => r.reason === DropReason.ENDPOINT_DISABLED && r.packets > 0n);
  if (!dropped) throw new Error('expected drops with reason endpoint-disabled');
}

process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});
try {
  main();
  say('Cleaning up');
  cleanup();
  show('done: no namespaces, links or pins left behind');
} catch (err) {
  cleanup();
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
