// The k8s test cluster from a shell (run through test/k8s/cli.mjs, which
// bundles this file with esbuild the way bench/run.mjs runs benchmarks):
//
//   node test/k8s/cli.mjs up [--nodes N] [--cni bridge|none] [--coredns] [--no-pod-routes]
//        brings the cluster up and stays in the foreground; Ctrl-C / SIGTERM stops it
//   node test/k8s/cli.mjs down     stops a running cluster (signals its process), or undoes
//                                  what a dead one left behind
//   node test/k8s/cli.mjs status   the cluster's state file, nodes and pods
import { execFileSync } from 'node:child_process';
import { Cluster, sweepStale, type CniMode } from './cluster.js';
import { Ledger, aliveAs, sleepSync } from './ledger.js';
import { bin } from './paths.js';

function usage(): never {
  console.error('usage: cluster-cli up [--nodes N] [--cni bridge|none] [--coredns] [--no-pod-routes] | down | status');
  process.exit(2);
}

async function up(args: string[]): Promise<void> {
  let nodes = 2;
  let cni: CniMode = 'bridge';
  let coredns = false;
  let podRoutes = true;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--nodes') nodes = Number(args[++i]);
    else if (a === '--cni') {
      const v = args[++i];
      if (v !== 'bridge' && v !== 'none') usage();
      cni = v;
    } else if (a === '--coredns') coredns = true;
    else if (a === '--no-pod-routes') podRoutes = false;
    else usage();
  }
  const cluster = await Cluster.start({ nodes, cni, podRoutes });
  if (coredns) {
    if (cni === 'none') console.log('[k8s] --coredns with --cni none: CoreDNS stays Pending until a CNI is installed');
    await cluster.apply((await import('./coredns.js')).coreDnsManifests({ serviceIp: '10.96.0.10' }));
    if (cni === 'bridge') await cluster.waitPodsReady('kube-system', 'k8s-app=kube-dns');
  }
  console.log(`
export KUBECONFIG=${cluster.kubeconfig}
kubectl: ${bin('kubectl')}
nodes:
${cluster.nodes.map((n) => `  ${n.name}  ip ${n.ip}  podCIDR ${n.podCidr}  netns ${n.netnsPath}  mount ns: nsenter --mount=/proc/${n.holderPid}/ns/mnt --net=${n.netnsPath}`).join('\n')}
${cluster.describeProcesses()}
Running; Ctrl-C (or 'cluster-cli down') stops it and removes everything.`);
  // Stay up; the cluster's SIGINT/SIGTERM handlers stop it and exit.
  setInterval(() => {}, 1 << 30);
}

function down(): void {
  const files = Ledger.list();
  if (files.length === 0) {
    console.log('no cluster');
    return;
  }
  for (const file of files) {
    const ledger = Ledger.load(file);
    const { owner, ownerStart } = ledger.state;
    if (ledger.running) {
      console.log(`stopping the cluster of process ${owner}`);
      process.kill(owner, 'SIGTERM');
      const deadline = Date.now() + 90_000;
      while (aliveAs(owner, ownerStart) && Date.now() < deadline) sleepSync(200);
      if (ledger.running) {
        console.log(`process ${owner} did not stop; killing it and undoing its ledger here`);
        process.kill(owner, 'SIGKILL');
        sleepSync(500);
      }
    }
  }
  sweepStale((m) => console.log(m));
  console.log('down');
}

function status(): void {
  const files = Ledger.list();
  if (files.length === 0) {
    console.log('no cluster');
    return;
  }
  for (const file of files) {
    const { state } = Ledger.load(file);
    const alive = aliveAs(state.owner, state.ownerStart) && !state.stopped;
    console.log(`${file}: owner ${state.owner} (${alive ? 'running' : 'stopped or gone, leftovers: run down'}), since ${state.created}, dir ${state.dir}, ${state.entries.length} ledger entries`);
    console.log(`  KUBECONFIG=${String(state.info.kubeconfig)}`);
    if (!alive) continue;
    for (const what of [['get', 'nodes', '-o', 'wide'], ['get', 'pods', '-A', '-o', 'wide']]) {
      try {
        console.log(execFileSync(bin('kubectl'), what, { encoding: 'utf8', env: { ...process.env, KUBECONFIG: String(state.info.kubeconfig) }, timeout: 15_000 }));
      } catch (err) {
        console.log(`kubectl ${what.join(' ')}: ${(err as Error).message}`);
      }
    }
  }
}

const [cmd, ...rest] = process.argv.slice(2);
if (cmd === 'up') {
  up(rest).catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
} else if (cmd === 'down') down();
else if (cmd === 'status') status();
else usage();
