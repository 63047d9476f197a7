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

  it('endpoints of one identity share one compiled policy, also without a cache', () => {
    const [, two] = steps();
    const c = compile(two!);
    expect(c.endpoints.get('x.c2')).toBe(c.endpoints.get('x.c1'));
  });
});
