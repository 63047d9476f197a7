import { describe, expect, it } from 'vitest';
import { CompileCache, compile, newAllocators, type EndpointInput, type PolicyInput } from './compile.js';
import { parseFqdnPolicy } from './fqdn.js';
import { parseNetworkPolicy } from './netpol.js';

const namespaces = new Map([['x', { 'kubernetes.io/metadata.name': 'x', team: 't' }]]);
const web = [{ name: 'http', protocol: 'TCP' as const, port: 80 }];
const pod = (name: string, ip: string, labels: Record<string, string>, namedPorts = web): EndpointInput => ({ key: `x.${name}`, namespace: 'x', name, ips: [ip], labels, namedPorts });
const np = (name: string, spec: unknown) => parseNetworkPolicy({ metadata: { name, namespace: 'x' }, spec });

const server = np('server', {
  podSelector: { matchLabels: { role: 'server' } },
  ingress: [
    { from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ port: 'http' }] },
    { from: [{ ipBlock: { cidr: '10.9.0.0/16', except: ['10.9.1.0/24'] } }, { ipBlock: { cidr: '10.9.1.128/25' } }] },
  ],
  egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' } }], ports: [{ port: 80 }] }],
});
/** Egress to a named port inside an ipBlock: depends on which pod holds which address. */
const namedInBlock = np('named', { podSelector: { matchLabels: { role: 'server' } }, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/30' } }], ports: [{ port: 'http' }] }] });
const clients = np('clients', { podSelector: { matchLabels: { role: 'client' } }, egress: [{ to: [{ namespaceSelector: { matchLabels: { team: 't' } } }] }] });
const fqdn = parseFqdnPolicy({ metadata: { name: 'f', namespace: 'x' }, spec: { podSelector: { matchLabels: { role: 'client' } }, egress: [{ toFQDNs: [{ matchName: 'example.test' }] }] } } as never);

/** A sequence of inputs as an agent sees them: pods come and go, policies change. */
function steps(): PolicyInput[] {
  const s1 = pod('s1', '10.0.0.1', { role: 'server' });
  const c1 = pod('c1', '10.0.0.2', { role: 'client' });
  const c2 = pod('c2', '10.0.0.3', { role: 'client' });
  const c3 = pod('c3', '10.0.0.4', { role: 'client', v: '2' }, []);
  const base = { namespaces, nodeIps: ['10.0.255.1'] };
  return [
    { ...base, endpoints: [s1, c1], policies: [server] },
    { ...base, endpoints: [s1, c1, c2], policies: [server] }, // a pod of an existing identity
    { ...base, endpoints: [s1, c1, c2, c3], policies: [server] }, // a new identity
    { ...base, endpoints: [s1, c1, c2, c3], policies: [server, clients], fqdnPolicies: [fqdn] },
    { ...base, endpoints: [c1, c2, c3], policies: [server, clients], fqdnPolicies: [fqdn] },
    { ...base, endpoints: [c1, c2, c3], policies: [server, clients], fqdnPolicies: [fqdn], dnsInterceptAll: true },
    { ...base, namespaces: new Map([['x', { 'kubernetes.io/metadata.name': 'x' }]]), endpoints: [s1, c1, c2, c3], policies: [server, clients] },
    { ...base, endpoints: [s1, c1, c2, c3], policies: [server, namedInBlock] },
    { ...base, endpoints: [s1, c1, c2, c3, pod('c4', '10.0.0.8', { role: 'client' })], policies: [server, namedInBlock] },
    { ...base, endpoints: [s1, c1, c3, pod('c4', '10.0.0.8', { role: 'client' })], policies: [server, namedInBlock] },
  ];
}

describe('compile with a CompileCache', () => {
  it('gives exactly what a fresh compile gives, step after step', () => {
    const cached = newAllocators();
    const fresh = newAllocators();
    const cache = new CompileCache();
    for (const input of steps()) {
      expect(compile(input, cached, cache)).toEqual(compile(input, fresh));
    }
  });

  it('a pod of an existing identity reuses the very same compiled policy objects', () => {
    const alloc = newAllocators();
    const cache = new CompileCache();
    const [one, two] = steps();
    const a = compile(one!, alloc, cache);
    const b = compile(two!, alloc, cache);
    expect(cache.hits).toBe(1);
    expect(b.endpoints.get('x.s1')).toBe(a.endpoints.get('x.s1'));
    expect(b.endpoints.get('x.c2')).toBe(a.endpoints.get('x.c1'));
  });

  it('a new identity or a policy edit recompiles (the context changed)', () => {
    const alloc = newAllocators();
    const cache = new CompileCache();
    const [one, two, three, four] = steps();
    compile(one!, alloc, cache);
    const b = compile(two!, alloc, cache);
    const c = compile(three!, alloc, cache);
    expect(cache.hits).toBe(1);
    expect(c.endpoints.get('x.s1')).not.toBe(b.endpoints.get('x.s1'));
    const d = compile(four!, alloc, cache);
    expect(cache.hits).toBe(1);
    expect(d.endpoints.get('x.c1')!.selectedBy).toEqual(['x/clients', 'FQDNPolicy x/f']);
  });

  it('with egress to a named port inside an ipBlock, pod addresses are part of the context', () => {
    const alloc = newAllocators();
    const cache = new CompileCache();
    const all = steps();
    const fresh = newAllocators();
    for (const input of all.slice(-3)) expect(compile(input, alloc, cache)).toEqual(compile(input, fresh));
    expect(cache.hits).toBe(0);
  });

  it('a new identity recompiles only the identities whose pod peers now select something else', () => {
    const alloc = newAllocators();
    const cache = new CompileCache();
    const [, two, three] = steps();
    const b = compile(two!, alloc, cache);
    const c = compile(three!, alloc, cache); // c3: a new client identity
    expect(cache.hits).toBe(0);
    // The server's ingress peers (role: client) now select c3 too: recompiled.
    expect(c.endpoints.get('x.s1')).not.toBe(b.endpoints.get('x.s1'));
    expect(c.endpoints.get('x.s1')!.entries.map((e) => e.peer)).toContain(c.endpoints.get('x.c3')!.identity);
    // The clients are selected by no policy: carried over as they were.
    expect(c.endpoints.get('x.c1')).toBe(b.endpoints.get('x.c1'));
    expect(cache.carried).toBe(1);
    expect(c).toEqual(compile(three!, newAllocators()));
  });

  it('an identity that read every identity (egress to a named port, no peers) is recompiled on any change of identities', () => {
    const anyNamed = np('any-named', { podSelector: { matchLabels: { role: 'client' } }, egress: [{ ports: [{ port: 'http' }] }] });
    const base = { namespaces, nodeIps: [] };
    const c1 = pod('c1', '10.0.0.2', { role: 'client' });
    const web2 = pod('w2', '10.0.0.5', { role: 'web' }, [{ name: 'http', protocol: 'TCP', port: 8080 }]);
    const alloc = newAllocators();
    const cache = new CompileCache();
    const a = compile({ ...base, endpoints: [c1], policies: [anyNamed] }, alloc, cache);
    const b = compile({ ...base, endpoints: [c1, web2], policies: [anyNamed] }, alloc, cache);
    expect(b.endpoints.get('x.c1')).not.toBe(a.endpoints.get('x.c1'));
    expect(b.endpoints.get('x.c1')!.entries.map((e) => e.portMin)).toEqual([80, 8080]);
    expect(cache.carried).toBe(0);
  });

  it('the ipBlock prefixes are worked out again only when the NetworkPolicies change', () => {
    const alloc = newAllocators();
    const cache = new CompileCache();
    const [one, two, three, four] = steps();
    const a = compile(one!, alloc, cache);
    const prefixes = cache.prefixes;
    compile(two!, alloc, cache);
    compile(three!, alloc, cache); // a new identity: per-identity results go, the prefixes stay
    expect(cache.prefixes).toBe(prefixes);
    const d = compile(four!, alloc, cache); // another policy set
    expect(cache.prefixes).not.toBe(prefixes);
    expect([...d.cidrs]).toEqual([...a.cidrs]); // same prefixes, same identities
  });

  it('random pod churn under a mixed policy set: cached compiles equal fresh ones at every step', () => {
    let seed = 1313;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const nss = new Map<string, Record<string, string>>([
      ['x', { 'kubernetes.io/metadata.name': 'x', team: 't' }],
      ['y', { 'kubernetes.io/metadata.name': 'y' }],
    ]);
    const pol = (name: string, ns: string, spec: unknown) => parseNetworkPolicy({ metadata: { name, namespace: ns }, spec });
    const policies = [
      server,
      clients,
      pol('y-in', 'y', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 't' } }, podSelector: { matchExpressions: [{ key: 'role', operator: 'In', values: ['client', 'web'] }] } }], ports: [{ port: 'http' }, { port: 53, protocol: 'UDP' }] }] }),
      pol('y-out', 'y', { podSelector: { matchLabels: { role: 'web' } }, egress: [{ to: [{ podSelector: { matchLabels: { role: 'server' } } }], ports: [{ port: 'http' }] }] }),
    ];
    const ports = [[], web, [{ name: 'http', protocol: 'TCP' as const, port: 8080 }]];
    const live = new Map<string, EndpointInput>();
    const cachedAlloc = newAllocators();
    const freshAlloc = newAllocators();
    const cache = new CompileCache();
    for (let step = 0; step < 40; step++) {
      const name = `p${rnd(12)}`;
      if (live.has(name) && rnd(3) === 0) live.delete(name);
      else {
        const ns = rnd(3) ? 'x' : 'y';
        live.set(name, { key: `${ns}.${name}`, namespace: ns, name, ips: [`10.0.${step}.${rnd(200) + 1}`], labels: { role: ['client', 'server', 'web'][rnd(3)]! }, namedPorts: ports[rnd(3)]! });
      }
      const input: PolicyInput = { namespaces: nss, endpoints: [...live.values()], policies: step > 30 ? policies.slice(1) : policies, nodeIps: ['10.0.255.1'] };
      expect(compile(input, cachedAlloc, cache)).toEqual(compile(input, freshAlloc));
    }
    expect(cache.carried + cache.hits).toBeGreaterThan(0);
  });

  it('a policy edit recomputes only the edited policy\'s contributions, the others are reused', () => {
    const s1 = pod('s1', '10.0.0.1', { role: 'server' });
    const c1 = pod('c1', '10.0.0.2', { role: 'client' });
    const byPort = (name: string, port: number) => np(name, { podSelector: { matchLabels: { role: 'server' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ port }] }] });
    const a1 = byPort('a', 81);
    const b1 = byPort('b', 82);
    const base = { namespaces, nodeIps: [], endpoints: [s1, c1] };
    const alloc = newAllocators();
    const freshAlloc = newAllocators(); // the same history, never cached
    const cache = new CompileCache();
    compile({ ...base, policies: [server, a1, b1] }, alloc, cache);
    compile({ ...base, policies: [server, a1, b1] }, freshAlloc);
    expect([cache.contributionHits, cache.contributionMisses]).toEqual([0, 3]);
    const prefixes = cache.prefixes!;
    const edited = { ...base, policies: [server, byPort('a', 83), b1] };
    const out = compile(edited, alloc, cache);
    // server and b reused for s1; only the new 'a' computed.
    expect([cache.contributionHits, cache.contributionMisses]).toEqual([2, 4]);
    expect(out).toEqual(compile(edited, freshAlloc));
    expect(out.endpoints.get('x.s1')!.entries.filter((e) => e.ref.policy === 'x/a').map((e) => e.portMin)).toEqual([83]);
    // No ipBlock changed: the prefixes, their identities and expansions are the previous ones.
    expect(cache.prefixes!.index).toBe(prefixes.index);
    expect(cache.prefixes!.blocks).toBe(prefixes.blocks);
    // An edit that adds a prefix works them out again, and recomputes every contribution.
    const widened = np('a', { podSelector: { matchLabels: { role: 'server' } }, ingress: [{ from: [{ ipBlock: { cidr: '192.168.0.0/16' } }] }] });
    const again = { ...base, policies: [server, widened, b1] };
    expect(compile(again, alloc, cache)).toEqual(compile(again, freshAlloc));
    expect(cache.prefixes!.index).not.toBe(prefixes.index);
    expect(cache.contributionMisses).toBe(7);
  });

  it('random policy edits and pod churn: cached compiles equal fresh ones at every step', () => {
    let seed = 4242;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return (seed >>> 12) % n; // the high bits: the low ones of this LCG have short periods
    };
    const pick = <T,>(xs: readonly T[]): T => xs[rnd(xs.length)]!;
    const nss = new Map<string, Record<string, string>>([
      ['x', { 'kubernetes.io/metadata.name': 'x', team: 't' }],
      ['y', { 'kubernetes.io/metadata.name': 'y' }],
    ]);
    const roles = ['client', 'server', 'web'];
    // Nested and disjoint prefixes that come and go with the edits (pods live in 10.0.0-7.1-4).
    const randomBlock = () =>
      pick([
        () => ({ cidr: '10.0.0.0/8', except: [`10.0.${rnd(4)}.0/24`] }),
        () => ({ cidr: `10.0.${rnd(4)}.0/24` }),
        () => {
          const net = rnd(4);
          return { cidr: `10.0.${net}.0/29`, except: [`10.0.${net}.${4 * rnd(2)}/30`] };
        },
        () => ({ cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] }),
        () => ({ cidr: `192.168.${rnd(3)}.0/24` }),
      ])();
    const randomPeer = (): unknown =>
      pick([
        () => ({ podSelector: { matchLabels: { role: pick(roles) } } }),
        () => ({ namespaceSelector: { matchLabels: { team: 't' } }, podSelector: { matchLabels: { role: pick(roles) } } }),
        () => ({ namespaceSelector: {} }),
        () => ({ ipBlock: randomBlock() }),
      ])();
    const randomPorts = (): unknown => pick([undefined, [{ port: 'http' }], [{ port: 80 + rnd(3) }], [{ port: 53, protocol: 'UDP' }, { port: 'http' }], [{ port: 8000, endPort: 8000 + rnd(20) }]]);
    const randomRule = (dir: 'from' | 'to'): unknown => {
      const ports = randomPorts();
      const peers = rnd(4) ? Array.from({ length: 1 + rnd(2) }, randomPeer) : undefined;
      return { ...(peers ? { [dir]: peers } : {}), ...(ports ? { ports } : {}) };
    };
    const randomPolicy = (name: string, ns: string) =>
      parseNetworkPolicy({
        metadata: { name, namespace: ns },
        spec: {
          podSelector: rnd(4) ? { matchLabels: { role: pick(roles) } } : {},
          ingress: Array.from({ length: rnd(3) }, () => randomRule('from')),
          egress: Array.from({ length: rnd(3) }, () => randomRule('to')),
          policyTypes: pick([['Ingress'], ['Egress'], ['Ingress', 'Egress']]),
        },
      });
    const fqdnPolicy = (name: string) =>
      parseFqdnPolicy({ metadata: { name, namespace: 'x' }, spec: { podSelector: { matchLabels: { role: pick(roles) } }, egress: [{ toFQDNs: [{ matchName: 'example.test' }], ports: [{ port: 443 }] }] } } as never);
    const ports = [[], web, [{ name: 'http', protocol: 'TCP' as const, port: 8080 }]];
    let policies = Array.from({ length: 6 }, (_, i) => randomPolicy(`p${i}`, i % 3 ? 'x' : 'y'));
    let fqdnPolicies = [fqdnPolicy('f0')];
    const live = new Map<string, EndpointInput>();
    const cachedAlloc = newAllocators();
    const freshAlloc = newAllocators();
    const cache = new CompileCache();
    let withBlocks = 0;
    for (let step = 0; step < 300; step++) {
      const what = rnd(10);
      if (what < 4 || live.size < 3) {
        const name = `q${rnd(10)}`;
        if (live.has(name) && rnd(3) === 0) live.delete(name);
        else {
          const ns = rnd(3) ? 'x' : 'y';
          live.set(name, { key: `${ns}.${name}`, namespace: ns, name, ips: [`10.0.${rnd(8)}.${rnd(4) + 1}`], labels: { role: pick(roles) }, namedPorts: ports[rnd(3)]! });
        }
      } else if (what < 8) {
        // Edit one policy: a new object, mostly with a new spec.
        const i = rnd(policies.length);
        policies = policies.map((p, k) => (k === i ? randomPolicy(p.name, p.namespace) : p));
      } else if (what === 8) {
        if (policies.length > 2 && rnd(2)) policies = policies.filter((_, k) => k !== rnd(policies.length));
        else policies = [...policies, randomPolicy(`n${step}`, rnd(2) ? 'x' : 'y')];
      } else {
        fqdnPolicies = rnd(2) ? [fqdnPolicy('f0')] : [];
      }
      const input: PolicyInput = { namespaces: nss, endpoints: [...live.values()], policies, fqdnPolicies, nodeIps: ['10.0.255.1'] };
      const out = compile(input, cachedAlloc, cache);
      if (out.cidrs.size > 2) withBlocks++;
      expect(out).toEqual(compile(input, freshAlloc));
    }
    // It exercised what it is about: reused contributions, and ipBlocks.
    expect(cache.contributionHits).toBeGreaterThan(100);
    expect(cache.contributionMisses).toBeGreaterThan(100);
    expect(withBlocks).toBeGreaterThan(100);
  });

  it('endpoints of one identity share one compiled policy, also without a cache', () => {
    const [, two] = steps();
    const c = compile(two!);
    expect(c.endpoints.get('x.c2')).toBe(c.endpoints.get('x.c1'));
  });
});
