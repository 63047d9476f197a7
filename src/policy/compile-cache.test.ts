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

  it('endpoints of one identity share one compiled policy, also without a cache', () => {
    const [, two] = steps();
    const c = compile(two!);
    expect(c.endpoints.get('x.c2')).toBe(c.endpoints.get('x.c1'));
  });
});
