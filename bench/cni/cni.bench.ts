// CNI ADD/DEL cost of sluice-cni against the reference plugins, on one
// simulated node, in one run:
//
//   sequential  BENCH_RUNS (40) iterations; each does one ADD with every
//               plugin, then one DEL with every plugin, in an order rotated
//               per iteration, so machine noise and cache state hit all alike.
//   parallel    BENCH_PAR (100) ADDs started at once, then as many DELs, for
//               bridge+host-local and sluice-cni in alternating order,
//               BENCH_ROUNDS (3) timed rounds each; then one more round each
//               with memory sampling (sampling costs CPU, so it never runs in
//               a timed round).
//
// Fairness: the reference plugins create their bridge / host-side veth in the
// netns they run in, so they must run inside the node netns; every plugin
// (sluice-cni too, which does not care: it only talks to the agent's socket)
// is therefore started as `nsenter --net=<node netns> <plugin>`, so the
// wrapper's cost is the same in every row. Same env (CNI_PATH=/usr/lib/cni),
// same cniVersion (1.0.0), IPv4 only for all; sluice uses its own IPAM (its
// default), the references host-local with a dataDir under the same /tmp.
// Each ADD gets a fresh pod netns made before the timer starts (`ip -batch`),
// deleted after its phase. One untimed ADD+DEL per plugin first creates the
// bridge and warms caches and the agent's JIT.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cleanup, podArgs, SLUICE_CNI, TestNode, uniqueName } from '../../test/helpers/agent.js';
import { cleanUpOnSignals } from '../lib/bench-netns.js';
import { findPid, hwmOf, resetHwm, RssSampler, rssOf, type RssPeak } from '../lib/procmem.js';
import { formatTable, ratio, stats, type Row } from '../lib/table.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 40);
const PAR = Number(process.env.BENCH_PAR ?? 100);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CNI_DIR = '/usr/lib/cni';
const BRIDGE = 'sltbr0';
const IFNAME = 'eth0';
const CALL_TIMEOUT_MS = 60_000;
const MB = 1024 * 1024;

type Key = 'bridge' | 'ptp' | 'sluice';
interface Plugin {
  key: Key;
  label: string;
  binary: string;
  conf: Record<string, unknown>;
  /** host-local's allocation directory (reference plugins). */
  hlDir?: string;
}

interface Call {
  ms: number;
  status: number;
  stdout: string;
  stderr: string;
}

const cleanup = new Cleanup();
cleanUpOnSignals(cleanup);

// ------------------------------------------------------------------ helpers

/** `count` fresh pod netns in one `ip -batch` (untimed; removed by cleanup too). */
function makeNetns(count: number): string[] {
  const names = Array.from({ length: count }, () => uniqueName('p'));
  const del = () => dropNetns(names);
  cleanup.add(del);
  run('ip', ['-batch', '-'], names.map((n) => `netns add ${n}`).join('\n'));
  return names.map((n) => `/var/run/netns/${n}`);
}

function dropNetns(names: string[]): void {
  const live = new Set(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(' ')[0]));
  const gone = names.map((n) => n.replace('/var/run/netns/', '')).filter((n) => live.has(n));
  if (gone.length) spawnSync('ip', ['-force', '-batch', '-'], { input: gone.map((n) => `netns del ${n}`).join('\n') });
}

function run(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout || r.error?.message}`);
  return r.stdout;
}

function cniEnv(command: string, id: string, netns: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: id,
    CNI_NETNS: netns,
    CNI_IFNAME: IFNAME,
    CNI_ARGS: podArgs('bench', id),
    CNI_PATH: CNI_DIR,
  };
}

let nodeNs = '';
const argv = (p: Plugin) => [`--net=${nodeNs}`, p.binary];

function callSync(p: Plugin, command: string, id: string, netns: string): Call {
  const start = process.hrtime.bigint();
  const r = spawnSync('nsenter', argv(p), { input: JSON.stringify(p.conf), env: cniEnv(command, id, netns), encoding: 'utf8', timeout: CALL_TIMEOUT_MS });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  return { ms, status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? r.error?.message ?? '' };
}

function callAsync(p: Plugin, command: string, id: string, netns: string, onPid?: (pid: number) => void): Promise<Call> {
  const start = process.hrtime.bigint();
  return new Promise((resolve) => {
    const child = spawn('nsenter', argv(p), { env: cniEnv(command, id, netns), stdio: ['pipe', 'pipe', 'pipe'], timeout: CALL_TIMEOUT_MS });
    if (child.pid) onPid?.(child.pid);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => resolve({ ms: NaN, status: -1, stdout: out, stderr: e.message }));
    child.on('close', (code) => resolve({ ms: Number(process.hrtime.bigint() - start) / 1e6, status: code ?? -1, stdout: out, stderr: err }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(JSON.stringify(p.conf));
  });
}

function firstIp(c: Call): string | undefined {
  try {
    return (JSON.parse(c.stdout) as { ips?: Array<{ address: string }> }).ips?.[0]?.address;
  } catch {
    return undefined;
  }
}

function describe(c: Call): string {
  return `exit ${c.status}: ${(c.stdout.trim() || c.stderr.trim()).replace(/\s+/g, ' ')}`.slice(0, 120);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

// ------------------------------------------------------------------ setup

const header = `node ${process.version}, kernel ${release()}, ${cpus().length} CPUs`;
const rows: Row[] = [];
const notes: string[] = [];
let failures = 0;

try {
  const node = new TestNode(cleanup, { podCidr: '10.81.0.0/16', nodeIp: '10.79.0.1/32' });
  nodeNs = node.ns.path;
  await node.start();
  const agentPid = findPid(`--state-dir ${node.stateDir}`);
  if (!agentPid) throw new Error('cannot find the agent process');

  const tmp = mkdtempSync(join(tmpdir(), 'slt-cnibench-'));
  cleanup.add(() => rmSync(tmp, { recursive: true, force: true }));
  const refConf = (type: string, name: string, subnet: string, dataDir: string, extra: Record<string, unknown> = {}) => ({
    cniVersion: '1.0.0',
    name,
    type,
    ...extra,
    ipMasq: false,
    ipam: { type: 'host-local', subnet, dataDir },
  });
  const plugins: Record<Key, Plugin> = {
    bridge: {
      key: 'bridge',
      label: 'bridge+host-local',
      binary: join(CNI_DIR, 'bridge'),
      conf: refConf('bridge', 'sltbench', '10.80.0.0/16', join(tmp, 'hl-bridge'), { bridge: BRIDGE, isGateway: true }),
      hlDir: join(tmp, 'hl-bridge', 'sltbench'),
    },
    ptp: {
      key: 'ptp',
      label: 'ptp+host-local',
      binary: join(CNI_DIR, 'ptp'),
      conf: refConf('ptp', 'sltbenchptp', '10.82.0.0/16', join(tmp, 'hl-ptp')),
      hlDir: join(tmp, 'hl-ptp', 'sltbenchptp'),
    },
    sluice: { key: 'sluice', label: 'sluice-cni', binary: SLUICE_CNI, conf: node.conf('1.0.0') },
  };
  const all = [plugins.bridge, plugins.ptp, plugins.sluice];

  /** What a plugin left on the node: host-side veths and IP allocations. */
  const leftovers = (p: Plugin): { veths: number; ips: number } => {
    const links = JSON.parse(node.ns.exec('ip', ['-j', 'link', 'show', 'type', 'veth']) || '[]') as Array<{ ifname: string; master?: string }>;
    const mine = links.filter((l) =>
      p.key === 'bridge' ? l.master === BRIDGE : p.key === 'sluice' ? l.ifname.startsWith('slc') : !l.master && !l.ifname.startsWith('slc'),
    );
    const ips = p.hlDir ? readdirSafe(p.hlDir).filter((f) => /^[\d.]+$|:/.test(f)).length : node.allocations().length + node.endpointRecords().length;
    return { veths: mine.length, ips };
  };

  // Warm-up: creates the bridge, fills the page cache, JITs the agent's path.
  const warm = makeNetns(all.length * 2);
  for (let w = 0; w < 2; w++) {
    all.forEach((p, i) => {
      const ns = warm[w * all.length + i]!;
      const a = callSync(p, 'ADD', `warm-${p.key}-${w}`, ns);
      if (a.status !== 0) throw new Error(`${p.label} warm-up ADD failed: ${describe(a)}`);
      const d = callSync(p, 'DEL', `warm-${p.key}-${w}`, ns);
      if (d.status !== 0) throw new Error(`${p.label} warm-up DEL failed: ${describe(d)}`);
    });
  }
  dropNetns(warm);

  // ---------------------------------------------------------------- sequential
  const seq = { ADD: new Map<Key, number[]>(), DEL: new Map<Key, number[]>() };
  const seqFail = { ADD: new Map<Key, string>(), DEL: new Map<Key, string>() };
  for (const p of all) {
    seq.ADD.set(p.key, []);
    seq.DEL.set(p.key, []);
  }
  const floor: number[] = [];
  const seqNs = makeNetns(RUNS * all.length);
  for (let i = 0; i < RUNS; i++) {
    const order = all.map((_, j) => all[(i + j) % all.length]!);
    for (const cmd of ['ADD', 'DEL'] as const) {
      for (const p of order) {
        if (seqFail[cmd].has(p.key) || (cmd === 'DEL' && seqFail.ADD.has(p.key))) continue;
        const c = callSync(p, cmd, `seq-${p.key}-${i}`, seqNs[i * all.length + all.indexOf(p)]!);
        if (c.status !== 0 || (cmd === 'ADD' && !firstIp(c))) seqFail[cmd].set(p.key, describe(c));
        else seq[cmd].get(p.key)!.push(c.ms);
      }
    }
    // The spawn floor: nsenter + sluice-cni answering VERSION by itself.
    floor.push(callSync({ ...plugins.sluice, conf: { cniVersion: '1.0.0' } }, 'VERSION', 'v', '').ms);
  }
  for (const p of all) {
    const left = leftovers(p);
    if (left.veths || left.ips) seqFail.DEL.set(p.key, `after ${RUNS} DELs: ${left.veths} veths, ${left.ips} allocations left`);
  }
  dropNetns(seqNs);

  const seqRow = (p: Plugin, cmd: 'ADD' | 'DEL', target?: number): Row => {
    const st = stats(seq[cmd].get(p.key)!);
    const base = stats(seq[cmd].get('bridge')!);
    const isBase = p.key === 'bridge';
    const r = st.median / base.median;
    return {
      scenario: `${p.key === 'bridge' || cmd === 'ADD' ? p.label : p.key} ${cmd}${isBase ? ' (baseline)' : ''}`,
      samples: st.n,
      results: { 'p50 ms': fmt(st.median), 'p95 ms': fmt(st.p95), 'max ms': fmt(st.max) },
      vsBaseline: isBase ? '' : `${ratio(st.median, base.median)} p50${target === undefined ? '' : r <= target ? ` (target ≤${target}x: met)` : ` (target ≤${target}x: MISSED)`}`,
      failed: seqFail[cmd].get(p.key),
    };
  };

  // ---------------------------------------------------------------- parallel
  interface Round {
    addMs: number;
    delMs: number;
    addMem?: RssPeak;
    delMem?: RssPeak;
    agentIdle?: number;
    agentHwmAdd?: number;
    agentHwmDel?: number;
  }
  const par = new Map<Key, Round[]>([
    ['bridge', []],
    ['sluice', []],
  ]);
  const parFail = new Map<string, string>();
  const checks: string[] = [];
  const fail = (what: string, why: string) => {
    if (!parFail.has(what)) parFail.set(what, why);
  };

  const burst = async (p: Plugin, cmd: 'ADD' | 'DEL', ids: string[], nss: string[], sampler?: RssSampler): Promise<{ ms: number; calls: Call[] }> => {
    sampler?.start();
    const start = process.hrtime.bigint();
    const pending = ids.map((id, i) => callAsync(p, cmd, id, nss[i]!, (pid) => sampler?.roots.add(pid)));
    sampler?.sample();
    const calls = await Promise.all(pending);
    return { ms: Number(process.hrtime.bigint() - start) / 1e6, calls };
  };

  const parallelRound = async (p: Plugin, r: number, sampled: boolean): Promise<void> => {
    const tag = `${p.key} ${PAR} parallel`;
    const nss = makeNetns(PAR);
    const ids = nss.map((_, i) => `par-${p.key}-${r}-${i}`);
    const round: Round = { addMs: NaN, delMs: NaN };
    const resident = p.key === 'sluice' ? [agentPid] : [];
    if (p.key === 'sluice' && sampled) {
      round.agentIdle = rssOf(agentPid)?.[0];
      resetHwm(agentPid);
    }

    const addSampler = sampled ? new RssSampler({ resident }) : undefined;
    const add = await burst(p, 'ADD', ids, nss, addSampler);
    round.addMem = addSampler?.stop();
    if (p.key === 'sluice' && sampled) {
      round.agentHwmAdd = hwmOf(agentPid);
      resetHwm(agentPid);
    }
    const bad = add.calls.filter((c) => c.status !== 0 || !firstIp(c));
    if (bad.length) fail(`${tag} ADD`, `${bad.length} of ${PAR} failed, e.g. ${describe(bad[0]!)}`);
    else round.addMs = add.ms;
    const ips = add.calls.map(firstIp).filter(Boolean);
    const distinct = new Set(ips).size;
    const afterAdd = leftovers(p);
    if (distinct !== PAR) fail(`${tag} ADD: distinct IPs`, `round ${r}: ${distinct} distinct IPs from ${PAR} ADDs`);
    if (afterAdd.veths !== PAR) fail(`${tag} ADD: veths`, `round ${r}: ${afterAdd.veths} host veths after ${PAR} ADDs`);

    const delSampler = sampled ? new RssSampler({ resident }) : undefined;
    const del = await burst(p, 'DEL', ids, nss, delSampler);
    round.delMem = delSampler?.stop();
    if (p.key === 'sluice' && sampled) round.agentHwmDel = hwmOf(agentPid);
    const badDel = del.calls.filter((c) => c.status !== 0);
    if (badDel.length) fail(`${tag} DEL`, `${badDel.length} of ${PAR} failed, e.g. ${describe(badDel[0]!)}`);
    else round.delMs = del.ms;
    const left = leftovers(p);
    if (left.veths || left.ips) fail(`${tag} DEL: nothing left`, `round ${r}: ${left.veths} veths, ${left.ips} allocations left`);
    if (distinct === PAR && afterAdd.veths === PAR && !left.veths && !left.ips && !bad.length && !badDel.length) checks.push(p.key);

    dropNetns(nss);
    par.get(p.key)!.push(round);
    await sleep(300); // let the kernel's netns teardown settle
  };

  for (let r = 0; r <= ROUNDS; r++) {
    const sampled = r === ROUNDS;
    for (const p of r % 2 ? [plugins.sluice, plugins.bridge] : [plugins.bridge, plugins.sluice]) await parallelRound(p, r, sampled);
  }

  // ---------------------------------------------------------------- table
  rows.push(seqRow(plugins.bridge, 'ADD'), seqRow(plugins.ptp, 'ADD'), seqRow(plugins.sluice, 'ADD', 2));
  rows.push(seqRow(plugins.bridge, 'DEL'), seqRow(plugins.ptp, 'DEL'), seqRow(plugins.sluice, 'DEL', 1));

  const parStat = (k: Key, cmd: 'ADD' | 'DEL') => {
    const rounds = par.get(k)!;
    const wall = stats(rounds.slice(0, ROUNDS).map((x) => (cmd === 'ADD' ? x.addMs : x.delMs)).filter(Number.isFinite));
    const mem = rounds[ROUNDS]?.[cmd === 'ADD' ? 'addMem' : 'delMem'];
    return { wall, mem };
  };
  for (const cmd of ['ADD', 'DEL'] as const) {
    const base = parStat('bridge', cmd);
    for (const k of ['bridge', 'sluice'] as const) {
      const { wall, mem } = parStat(k, cmd);
      const isBase = k === 'bridge';
      const target = cmd === 'ADD' ? 2 : undefined;
      const r = wall.median / base.wall.median;
      const name = `${k} ${PAR} parallel ${cmd}`;
      rows.push({
        scenario: `${name}${isBase ? ' (baseline)' : ''}`,
        samples: wall.n,
        results: { 'wall ms': fmt(wall.median, 0), 'peak RSS MB': mem ? fmt(mem.peakBytes / MB) : '-', 'peak anon MB': mem ? fmt(mem.peakAnonBytes / MB) : '-' },
        vsBaseline: isBase ? '' : `${ratio(wall.median, base.wall.median)} wall${target === undefined ? '' : r <= target ? ` (target ≤${target}x: met)` : ` (target ≤${target}x: MISSED)`}`,
        failed: parFail.get(name),
      });
    }
  }
  // Correctness checks get rows of their own, so the timings stay visible.
  for (const [what, why] of parFail) {
    if (!/: /.test(what)) continue; // an ADD/DEL that failed outright already failed its row
    rows.push({ scenario: `check: ${what}`, samples: 1, results: {}, vsBaseline: '', failed: why });
  }
  failures = rows.filter((r) => r.failed).length;

  // ---------------------------------------------------------------- notes
  const agentMs = agentTimes(node.log());
  const seqAgent = (cmd: string) => stats(agentMs.filter((e) => e.cmd === cmd && e.id.startsWith('seq-')).map((e) => e.ms)).median;
  const parAgent = (cmd: string) => stats(agentMs.filter((e) => e.cmd === cmd && e.id.startsWith('par-')).map((e) => e.ms));
  const fl = stats(floor).median;
  notes.push(
    `sequential: ${RUNS} iterations, plugin order rotated each time; p50/p95/max of the wall time of one \`nsenter --net=<node> <plugin>\` run (spawn to exit).`,
    `  spawn floor (nsenter + sluice-cni answering VERSION itself, no agent): p50 ${fmt(fl, 2)} ms.`,
    `  sluice agent-side handler time (agent log "ms"), p50: ADD ${fmt(seqAgent('ADD'), 2)} ms, DEL ${fmt(seqAgent('DEL'), 2)} ms; ` +
      `end-to-end p50 ADD ${fmt(stats(seq.ADD.get('sluice')!).median, 2)} ms, DEL ${fmt(stats(seq.DEL.get('sluice')!).median, 2)} ms.`,
    `parallel: ${PAR} calls spawned at once; wall = first spawn to last exit, median of ${ROUNDS} rounds per plugin (bridge/sluice order alternating).`,
    `  sluice agent-side handler time in the parallel rounds: ADD p50 ${fmt(parAgent('ADD').median)} / max ${fmt(parAgent('ADD').max)} ms, ` +
      `DEL p50 ${fmt(parAgent('DEL').median)} / max ${fmt(parAgent('DEL').max)} ms (may include waiting while the agent's event loop runs other requests' synchronous work).`,
  );
  // Sum of the agent's handler times over a round's wall time: ~1 means the
  // agent worked on one request at a time for the whole round.
  const busy = (cmd: 'ADD' | 'DEL') =>
    stats(
      par
        .get('sluice')!
        .slice(0, ROUNDS)
        .map((round, r) => agentMs.filter((e) => e.cmd === cmd && e.id.startsWith(`par-sluice-${r}-`)).reduce((a, e) => a + e.ms, 0) / (cmd === 'ADD' ? round.addMs : round.delMs)),
    ).median;
  notes.push(`  sum of agent handler ms / wall ms (1.0 = one request at a time, start to end): ADD ${fmt(busy('ADD'), 2)}, DEL ${fmt(busy('DEL'), 2)}.`);
  const memB = par.get('bridge')![ROUNDS];
  const memS = par.get('sluice')![ROUNDS];
  const memLine = (m: RssPeak | undefined) =>
    m ? `${fmt(m.peakBytes / MB)} MB (anon ${fmt(m.peakAnonBytes / MB)} MB; ${m.processes} processes, ${m.samples} samples, one per ${fmt(m.meanIntervalMs)} ms)` : '-';
  notes.push(
    `peak RSS: one extra, untimed round per plugin, /proc sampled on a 2 ms timer (achieved interval below; it stretches when ${PAR} plugins load the CPUs, so processes shorter than that can be missed): the peak of the summed RSS (statm) of every process alive at once.`,
    `  bridge: the nsenter→plugin processes and their host-local children. ADD ${memLine(memB?.addMem)}; DEL ${memLine(memB?.delMem)}.`,
    `  sluice: the agent (counted whole, it is resident anyway) + the nsenter→sluice-cni shims. ADD ${memLine(memS?.addMem)}; DEL ${memLine(memS?.delMem)}.`,
    `  sluice breakdown at the ADD peak: agent ${fmt((memS?.addMem?.peakResidentBytes ?? NaN) / MB)} MB + shims ${fmt((memS?.addMem?.peakRootsBytes ?? NaN) / MB)} MB; ` +
      `agent RSS idle before the round ${fmt((memS?.agentIdle ?? NaN) / MB)} MB, VmHWM (exact, not sampled) during ADD ${fmt((memS?.agentHwmAdd ?? NaN) / MB)} MB, during DEL ${fmt((memS?.agentHwmDel ?? NaN) / MB)} MB.`,
    `  RSS sums count shared binary text once per process, so they are upper bounds; anon is the private part.`,
    `checks: sequential: no veth or allocation left after the DELs (${all.filter((p) => !seqFail.DEL.has(p.key)).length}/${all.length} plugins clean); ` +
      `parallel: ${PAR} distinct IPs and ${PAR} host veths after the ADDs, nothing left after the DELs in ` +
      `${checks.filter((k) => k === 'bridge').length}/${ROUNDS + 1} bridge and ${checks.filter((k) => k === 'sluice').length}/${ROUNDS + 1} sluice rounds (violations are FAILED rows).`,
  );
} catch (err) {
  failures++;
  rows.push({ scenario: 'benchmark', samples: 0, results: {}, vsBaseline: '', failed: (err as Error).message.replace(/\s+/g, ' ').slice(0, 200) });
} finally {
  cleanup.run();
}

process.stdout.write(`${header}\n\n`);
process.stdout.write(formatTable(`CNI ADD/DEL: sluice-cni vs reference plugins, one node, interleaved`, rows));
process.stdout.write(`\n${notes.map((n) => (n.startsWith('  ') ? n : `- ${n}`)).join('\n')}\n`);
process.exitCode = failures > 0 ? 1 : 0;

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function agentTimes(log: string): Array<{ cmd: string; id: string; ms: number }> {
  const out: Array<{ cmd: string; id: string; ms: number }> = [];
  for (const line of log.split('\n')) {
    if (!line.includes('"cni"')) continue;
    try {
      const e = JSON.parse(line) as { cni?: { command?: string; containerId?: string }; ms?: number };
      if (e.cni?.command && typeof e.ms === 'number') out.push({ cmd: e.cni.command, id: e.cni.containerId ?? '', ms: e.ms });
    } catch {
      // not a request line
    }
  }
  return out;
}
