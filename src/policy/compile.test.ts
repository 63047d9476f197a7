import { describe, expect, it } from 'vitest';
import { compile, newAllocators, PROTO_ANY, type EndpointInput, type PolicyEntry } from './compile.js';
import { ID_ANY, ID_HOST } from './identity.js';
import { parseNetworkPolicy } from './netpol.js';

const ns = (name: string, labels: Record<string, string> = {}) => [name, { 'kubernetes.io/metadata.name': name, ...labels }] as const;
const namespaces = new Map([ns('x', { ns: 'x' }), ns('y', { ns: 'y' })]);
const serve = [
  { name: 'http', protocol: 'TCP' as const, port: 80 },
  { name: 'dns', protocol: 'UDP' as const, port: 53 },
];
const pod = (namespace: string, name: string, ip: string, labels: Record<string, string>, namedPorts = serve): EndpointInput => ({ key: `${namespace}.${name}`, namespace, name, ips: [ip], labels, namedPorts });
const xa = pod('x', 'a', '10.0.0.1', { pod: 'a' });
const xb = pod('x', 'b', '10.0.0.2', { pod: 'b' });
const ya = pod('y', 'a', '10.0.0.3', { pod: 'a' });
const np = (namespace: string, spec: unknown) => parseNetworkPolicy({ metadata: { name: 'p', namespace }, spec });

function entries(policies: unknown[], endpoint = xa, eps = [xa, xb, ya]) {
  const c = compile({ namespaces, endpoints: eps, policies: policies.map((s) => np('x', s)), nodeIps: ['10.0.255.1'] });
  const id = (e: EndpointInput) => c.endpoints.get(e.key)!.identity;
  return { c, ep: c.endpoints.get(endpoint.key)!, id, strip: (es: PolicyEntry[]) => es.map(({ ref: _r, ...rest }) => rest) };
}

describe('compile', () => {
  it('an unselected pod is not isolated; the node has the host identity', () => {
    const { ep, c } = entries([]);
    expect(ep).toMatchObject({ ingressIsolated: false, egressIsolated: false, entries: [] });
    expect(c.ipcache.get('10.0.255.1')).toBe(ID_HOST);
  });

  it('pods with equal namespace, labels and named ports share an identity', () => {
    const twin = pod('x', 'a2', '10.0.0.9', { pod: 'a' });
    const other = pod('x', 'a3', '10.0.0.10', { pod: 'a' }, [{ name: 'http', protocol: 'TCP', port: 8080 }]);
    const { id } = entries([], xa, [xa, twin, other, ya]);
    expect(id(twin)).toBe(id(xa));
    expect(id(other)).not.toBe(id(xa)); // same labels, other port numbers
    expect(id(ya)).not.toBe(id(xa)); // same labels, other namespace
  });

  it('policyTypes defaults: ingress always, egress only with egress rules', () => {
    expect(entries([{ podSelector: {} }]).ep).toMatchObject({ ingressIsolated: true, egressIsolated: false, entries: [] });
    expect(entries([{ podSelector: {}, egress: [{}] }]).ep).toMatchObject({ ingressIsolated: true, egressIsolated: true });
    expect(entries([{ podSelector: {}, egress: [] }]).ep.egressIsolated).toBe(false);
    expect(entries([{ podSelector: {}, policyTypes: ['Egress'], ingress: [{}] }]).ep).toMatchObject({ ingressIsolated: false, egressIsolated: true, entries: [] });
  });

  it('peers: podSelector alone is the policy namespace; with namespaceSelector it is AND; separate peers OR', () => {
    const { ep, id, strip } = entries([{ podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'a' } } }] }] }]);
    expect(strip(ep.entries)).toEqual([{ direction: 'ingress', peer: id(xa), protocol: PROTO_ANY, portMin: 0, portMax: 65535 }]);
    const and = entries([{ podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'a' } } }] }] }]);
    expect(and.ep.entries.map((e) => e.peer)).toEqual([and.id(ya)]);
    const or = entries([{ podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }, { podSelector: { matchLabels: { pod: 'b' } } }] }] }]);
    expect(new Set(or.ep.entries.map((e) => e.peer))).toEqual(new Set([or.id(ya), or.id(xb)]));
  });

  it('absent from/ports mean any peer, any protocol and port', () => {
    const { ep, strip } = entries([{ podSelector: {}, ingress: [{}] }]);
    expect(strip(ep.entries)).toEqual([{ direction: 'ingress', peer: ID_ANY, protocol: PROTO_ANY, portMin: 0, portMax: 65535 }]);
  });

  it('ports: number, range, protocol default TCP, named port on the destination', () => {
    const { ep, strip, id } = entries([
      {
        podSelector: {},
        ingress: [{ ports: [{ port: 81 }, { port: 1000, endPort: 2000, protocol: 'UDP' }, { port: 'http' }, { port: 'dns', protocol: 'UDP' }, { port: 'dns' }] }],
        egress: [{ to: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 'http' }] }],
      },
    ]);
    expect(strip(ep.entries)).toEqual([
      { direction: 'ingress', peer: ID_ANY, protocol: 6, portMin: 81, portMax: 81 },
      { direction: 'ingress', peer: ID_ANY, protocol: 17, portMin: 1000, portMax: 2000 },
      { direction: 'ingress', peer: ID_ANY, protocol: 6, portMin: 80, portMax: 80 },
      { direction: 'ingress', peer: ID_ANY, protocol: 17, portMin: 53, portMax: 53 },
      // "dns" over TCP does not exist on the pod: nothing.
      { direction: 'egress', peer: id(xb), protocol: 6, portMin: 80, portMax: 80 },
    ]);
  });

  it('ipBlock with except: CIDR identities for the longest prefix, matching pod IPs too', () => {
    const { ep, c } = entries([{ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/24', except: ['10.0.0.2/32'] } }] }] }]);
    const allowed = new Set(ep.entries.map((e) => e.peer));
    expect(allowed.has(c.cidrs.get('10.0.0.0/24')!)).toBe(true);
    expect(allowed.has(c.cidrs.get('10.0.0.2/32')!)).toBe(false);
    expect(allowed.has(c.cidrs.get('0.0.0.0/0')!)).toBe(false);
    expect(c.cidrs.has('::/0')).toBe(true);
  });

  it('identities are stable across recompiles with the same allocators', () => {
    const alloc = newAllocators();
    const one = compile({ namespaces, endpoints: [xa, xb], policies: [], nodeIps: [] }, alloc);
    const two = compile({ namespaces, endpoints: [xb, ya, xa], policies: [], nodeIps: [] }, alloc);
    expect(two.endpoints.get(xa.key)!.identity).toBe(one.endpoints.get(xa.key)!.identity);
    expect(two.endpoints.get(xb.key)!.identity).toBe(one.endpoints.get(xb.key)!.identity);
  });
});

describe('parseNetworkPolicy rejects what the API server rejects', () => {
  it.each([
    ['no podSelector', {}],
    ['bad operator', { podSelector: { matchExpressions: [{ key: 'a', operator: 'Is', values: ['b'] }] } }],
    ['In without values', { podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }],
    ['bad protocol', { podSelector: {}, ingress: [{ ports: [{ protocol: 'ICMP' }] }] }],
    ['port 0', { podSelector: {}, ingress: [{ ports: [{ port: 0 }] }] }],
    ['endPort below port', { podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }],
    ['endPort with named port', { podSelector: {}, ingress: [{ ports: [{ port: 'http', endPort: 80 }] }] }],
    ['ipBlock with selector', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }] }],
    ['except outside cidr', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] } }] }] }],
    ['bad cidr', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/40' } }] }] }],
    ['empty peer', { podSelector: {}, ingress: [{ from: [{}] }] }],
    ['bad policyType', { podSelector: {}, policyTypes: ['Both'] }],
  ])('%s', (_what, spec) => {
    expect(() => np('x', spec)).toThrow(expect.objectContaining({ code: 'SLUICE_INVALID_POLICY' }));
  });
});
