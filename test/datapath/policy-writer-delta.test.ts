// The policy writer's in-place change of a generation, on the real maps: an
// edit that changes only an endpoint's entries (same identity, flags, FQDN
// rules, addresses) in a generation of its own rewrites the entries that
// changed, under the same policy_id, and leaves the policy map holding
// exactly what a fresh write of the new policy would. Anything else (a
// shared generation, a new identity) still gets a new generation; a delta
// that does not fit is rolled back and the endpoint fails closed.
import { mkdirSync, rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import * as policyCodec from '../../src/datapath/codec/policy.js';
import { Datapath, endpointCodec, MAP_POLICY, PolicyWriter, type ProgramTarget } from '../../src/datapath/index.js';
import { native } from '../../src/native/index.js';
import { compile, newAllocators, type CompiledPolicy, type PolicyInput } from '../../src/policy/compile.js';
import { parseNetworkPolicy } from '../../src/policy/netpol.js';
import { Cleanup, isRoot, uniqueName } from '../helpers/netns.js';

const cleanup = new Cleanup();
afterAll(() => cleanup.run());

function open(maxPolicyEntries?: number): Datapath {
  const bpffs = `/sys/fs/bpf/${uniqueName('pw')}`;
  mkdirSync(bpffs, { recursive: true });
  cleanup.add(() => rmSync(bpffs, { recursive: true, force: true }));
  const dp = Datapath.open({ bpffs, ...(maxPolicyEntries ? { maxPolicyEntries } : {}) });
  cleanup.add(() => dp.close());
  return dp;
}

/** The policy map's keys, decoded, by policy_id. */
function policyKeys(dp: Datapath): Map<number, string[]> {
  const n = native();
  const fd = dp.mapFd(MAP_POLICY);
  const out = new Map<number, string[]>();
  for (let k = n.mapGetNextKey(fd, null, policyCodec.KEY_SIZE); k; k = n.mapGetNextKey(fd, k, policyCodec.KEY_SIZE)) {
    const { policyId, ...rest } = policyCodec.decodeKey(k);
    if (!out.has(policyId)) out.set(policyId, []);
    out.get(policyId)!.push(JSON.stringify(rest));
  }
  for (const keys of out.values()) keys.sort();
  return out;
}

const ns = new Map([['x', { 'kubernetes.io/metadata.name': 'x' }]]);
const np = (name: string, spec: unknown) => parseNetworkPolicy({ metadata: { name, namespace: 'x' }, spec });
/** Ingress to the server from the client on `ports`, and from 10.9.0.0/16 on `cidrPorts`. */
const serverPolicy = (ports: number[], cidrPorts: number[] = []) =>
  np('server', {
    podSelector: { matchLabels: { role: 'server' } },
    ingress: [
      { from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: ports.map((port) => ({ port })) },
      ...(cidrPorts.length ? [{ from: [{ ipBlock: { cidr: '10.9.0.0/16' } }], ports: cidrPorts.map((port) => ({ port })) }] : []),
    ],
  });
const pod = (name: string, ip: string, role: string) => ({ key: `x.${name}`, namespace: 'x', name, ips: [ip], labels: { role }, namedPorts: [] });
const input = (policies: PolicyInput['policies'], pods = [pod('s', '10.0.0.1', 'server'), pod('c', '10.0.0.2', 'client')]): PolicyInput => ({ namespaces: ns, nodeIps: [], endpoints: pods, policies });
const targets: ProgramTarget[] = [
  { key: 'x.s', ifindex: 40001, ips: ['10.0.0.1'] },
  { key: 'x.c', ifindex: 40002, ips: ['10.0.0.2'] },
];

/** What a fresh writer on a fresh datapath writes for `compiled`: the policy map by endpoint. */
function freshWrite(compiled: CompiledPolicy, tg: ProgramTarget[] = targets): Map<string, string[]> {
  const dp = open();
  new PolicyWriter(dp).apply(compiled, tg);
  return byEndpoint(dp, tg);
}

function byEndpoint(dp: Datapath, tg: ProgramTarget[]): Map<string, string[]> {
  const keys = policyKeys(dp);
  const eps = dp.listEndpoints();
  return new Map(tg.map((t) => [t.key, keys.get(eps.get(t.ifindex)?.policyId ?? -1) ?? []]));
}

describe.skipIf(!isRoot)('policy writer: in-place change of a generation', () => {
  it('an edit of the entries only: same policy_id, the map holds exactly the new entries, nothing else', () => {
    const dp = open();
    const writer = new PolicyWriter(dp);
    const alloc = newAllocators();
    const steps = [[serverPolicy([80, 81], [53])], [serverPolicy([80, 82], [53, 54])], [serverPolicy([7000])], [serverPolicy([80, 81], [53])]];
    writer.apply(compile(input(steps[0]!), alloc), targets);
    const id = dp.listEndpoints().get(40001)!.policyId;
    expect(id).toBeGreaterThan(0);
    for (const policies of steps.slice(1)) {
      const compiled = compile(input(policies), alloc);
      const report = writer.apply(compiled, targets);
      expect(report).toMatchObject({ rewritten: 1, failed: [] });
      expect(dp.listEndpoints().get(40001)!.policyId).toBe(id);
      expect(byEndpoint(dp, targets)).toEqual(freshWrite(compiled));
      // No generation but the server's live one (the client is not isolated: none).
      expect([...policyKeys(dp).keys()]).toEqual([id]);
    }
  });

  it('a generation shared by two endpoints, or an identity change, still gets a new generation', () => {
    const dp = open();
    const writer = new PolicyWriter(dp);
    const alloc = newAllocators();
    const twins = [pod('s', '10.0.0.1', 'server'), pod('s2', '10.0.0.3', 'server'), pod('c', '10.0.0.2', 'client')];
    const tg = [...targets, { key: 'x.s2', ifindex: 40003, ips: ['10.0.0.3'] }];
    writer.apply(compile(input([serverPolicy([80])], twins), alloc), tg);
    const shared = dp.listEndpoints().get(40001)!.policyId;
    expect(dp.listEndpoints().get(40003)!.policyId).toBe(shared);
    const edited = compile(input([serverPolicy([81])], twins), alloc);
    writer.apply(edited, tg);
    const next = dp.listEndpoints().get(40001)!.policyId;
    expect(next).not.toBe(shared);
    expect(dp.listEndpoints().get(40003)!.policyId).toBe(next);
    expect(byEndpoint(dp, tg)).toEqual(freshWrite(edited, tg));
    expect([...policyKeys(dp).keys()]).toEqual([next]);

    // The server's labels and entries change (a new identity): a new generation.
    const relabelled = [pod('s', '10.0.0.1', 'server'), pod('c', '10.0.0.2', 'client')].map((p) => (p.name === 's' ? { ...p, labels: { role: 'server', v: '2' } } : p));
    writer.apply(compile(input([serverPolicy([81])]), alloc), targets);
    const alone = dp.listEndpoints().get(40001)!.policyId;
    const moved = compile(input([serverPolicy([82])], relabelled), alloc);
    writer.apply(moved, targets);
    expect(dp.listEndpoints().get(40001)!.policyId).not.toBe(alone);
    expect(dp.listEndpoints().get(40001)!.identity).not.toBe(moved.endpoints.get('x.c')!.identity);
    expect(byEndpoint(dp, targets)).toEqual(freshWrite(moved));
  });

  it('a delta that does not fit: rolled back, the endpoint fails closed, the next edit recovers it', () => {
    const dp = open(8);
    const writer = new PolicyWriter(dp);
    const alloc = newAllocators();
    writer.apply(compile(input([serverPolicy([80, 81])]), alloc), targets);
    const before = policyKeys(dp);
    expect([...before.values()].flat()).toHaveLength(2);
    const big = writer.apply(compile(input([serverPolicy(Array.from({ length: 12 }, (_, i) => 1000 + i))]), alloc), targets);
    expect(big.failed.map((f) => f.key)).toEqual(['x.s']);
    const server = dp.listEndpoints().get(40001)!;
    expect(server.flags & endpointCodec.FLAG_POLICY_FAILED).toBeTruthy();
    expect(server.policyId ?? 0).toBe(0);
    expect(policyKeys(dp).size).toBe(0); // neither the added keys nor the old generation are left
    const small = compile(input([serverPolicy([80])]), alloc);
    const back = writer.apply(small, targets);
    expect(back.failed).toEqual([]);
    expect(dp.listEndpoints().get(40001)!.flags & endpointCodec.FLAG_POLICY_FAILED).toBeFalsy();
    expect(byEndpoint(dp, targets)).toEqual(freshWrite(small));
  });
});
