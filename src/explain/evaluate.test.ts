import { describe, expect, it } from 'vitest';
import { parseManifest } from '../standalone/index.js';
import { ExplainCode } from './errors.js';
import { explain } from './evaluate.js';
import { worldInputOf } from './load.js';
import { buildWorld, type Learned, type World } from './world.js';

/** Namespaces x and y; pods a, b in x and a in y, with addresses of both families and named ports. */
const BASE = `
apiVersion: v1
kind: Namespace
metadata: { name: x, labels: { ns: x } }
---
apiVersion: v1
kind: Namespace
metadata: { name: y, labels: { ns: y } }
---
apiVersion: v1
kind: Pod
metadata: { name: a, namespace: x, labels: { pod: a } }
spec: { containers: [ { name: c, ports: [ { name: http, containerPort: 8080 } ] } ] }
status: { podIPs: [ { ip: 10.0.0.1 }, { ip: "fd00::1" } ] }
---
apiVersion: v1
kind: Pod
metadata: { name: b, namespace: x, labels: { pod: b } }
spec: { containers: [ { name: c, ports: [ { name: http, containerPort: 80 }, { name: dns, containerPort: 53, protocol: UDP }, { name: dns, containerPort: 53 } ] } ] }
status: { podIPs: [ { ip: 10.0.0.2 }, { ip: "fd00::2" } ] }
---
apiVersion: v1
kind: Pod
metadata: { name: a, namespace: y, labels: { pod: a } }
status: { podIP: 10.0.1.1 }
`;

function world(extra = '', opts: { nodeIps?: string[]; learned?: Learned } = {}): World {
  const input = worldInputOf(parseManifest(`${BASE}---\n${extra}`, 'test.yaml'));
  return buildWorld({ ...input, nodeIps: opts.nodeIps ?? [] }, opts.learned);
}

const ask = (w: World, from: string, to: string, port: string) => explain(w, { from, to, port });

const netpol = (ns: string, name: string, spec: string, annotations = '') =>
  `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: { name: ${name}, namespace: ${ns}${annotations ? `, annotations: ${annotations}` : ''} }\nspec: ${spec}\n`;
const fqdnpol = (ns: string, name: string, spec: string) => `apiVersion: sluice.dev/v1alpha1\nkind: FQDNPolicy\nmetadata: { name: ${name}, namespace: ${ns} }\nspec: ${spec}\n`;

describe('isolation', () => {
  it('with no policy everything is allowed and nothing decides it', () => {
    const e = ask(world(), 'x/a', 'y/a', '80/TCP');
    expect(e).toMatchObject({ verdict: 'allow', rules: [], judged: '80/TCP' });
    expect(e.reason).toBe('x/a is not isolated for egress; y/a is not isolated for ingress');
  });

  it('default deny ingress: denied into the namespace, named in reason and rules; out of it still allowed', () => {
    const w = world(netpol('y', 'deny', '{ podSelector: {} }'));
    const e = ask(w, 'x/a', 'y/a', '80/TCP');
    expect(e).toMatchObject({ verdict: 'deny', rules: ['y/deny'] });
    expect(e.reason).toBe('y/a is isolated for ingress by y/deny; no ingress rule allows x/a on 80/TCP');
    expect(ask(w, 'y/a', 'x/a', '80/TCP').verdict).toBe('allow');
  });

  it('egress and ingress must both allow; the chain shows both ends and the rule that allowed', () => {
    const w = world(netpol('x', 'to-y', '{ podSelector: { matchLabels: { pod: a } }, policyTypes: [Egress], egress: [ { to: [ { namespaceSelector: { matchLabels: { ns: y } } } ] } ] }') + '---\n' + netpol('y', 'deny', '{ podSelector: {} }'));
    const e = ask(w, 'x/a', 'y/a', '80/TCP');
    expect(e.verdict).toBe('deny');
    expect(e.rules).toEqual(['y/deny']);
    const [egress, ingress] = e.paths[0]!.steps;
    expect(egress).toMatchObject({ direction: 'egress', pod: 'x/a', outcome: 'allow', isolatedBy: ['x/to-y'], rules: [{ policy: 'x/to-y', direction: 'egress', rule: 0 }] });
    expect(ingress).toMatchObject({ direction: 'ingress', pod: 'y/a', outcome: 'deny', isolatedBy: ['y/deny'], rules: [] });
    const out = ask(w, 'x/a', 'x/b', '80/TCP');
    expect(out.verdict).toBe('deny');
    expect(out.reason).toContain('x/a is isolated for egress by x/to-y; no egress rule allows x/b');
    const ok = ask(world(netpol('x', 'to-y', '{ podSelector: { matchLabels: { pod: a } }, policyTypes: [Egress], egress: [ { to: [ { namespaceSelector: { matchLabels: { ns: y } } } ] } ] }')), 'x/a', 'y/a', '80/TCP');
    expect(ok).toMatchObject({ verdict: 'allow', rules: ['x/to-y'] });
    expect(ok.reason).toMatch(/^x\/a's egress to y\/a on 80\/TCP is allowed by x\/to-y egress rule 0 \(pods of y labelled/);
  });

  it('every allowing rule of the union is in the chain', () => {
    const w = world(netpol('y', 'p1', '{ podSelector: {}, ingress: [ { from: [ { namespaceSelector: {} } ] } ] }') + '---\n' + netpol('y', 'p2', '{ podSelector: {}, ingress: [ { ports: [ { port: 80 } ] } ] }'));
    const e = ask(w, 'x/a', 'y/a', '80/TCP');
    expect(e).toMatchObject({ verdict: 'allow', rules: ['y/p1', 'y/p2'] });
    expect(ask(w, 'x/a', 'y/a', '81/TCP').rules).toEqual(['y/p1']);
  });

  it('a pod to itself never meets a policy', () => {
    const e = ask(world(netpol('x', 'deny', '{ podSelector: {}, policyTypes: [Ingress, Egress] }')), 'x/a', 'x/a', '80');
    expect(e).toMatchObject({ verdict: 'allow', rules: [] });
    expect(e.reason).toContain('never leaves its network namespace');
  });
});

describe('ipBlock', () => {
  const w = world(netpol('y', 'block', '{ podSelector: {}, ingress: [ { from: [ { ipBlock: { cidr: 10.0.0.0/24, except: [ 10.0.0.2/32 ] } } ] } ] }'));

  it('matches pod addresses, and except carves a pod out', () => {
    expect(ask(w, 'x/a', 'y/a', '80/TCP')).toMatchObject({ verdict: 'allow', rules: ['y/block'] });
    expect(ask(w, 'x/a', 'y/a', '80/TCP').reason).toContain('(ipBlock 10.0.0.0/24)');
    expect(ask(w, 'x/b', 'y/a', '80/TCP')).toMatchObject({ verdict: 'deny', rules: ['y/block'] });
  });

  it('judges an address that is no pod by the block alone, and the pod an address belongs to as that pod', () => {
    expect(ask(w, '10.0.0.77', 'y/a', '80/TCP').verdict).toBe('allow');
    expect(ask(w, '10.0.0.77', 'y/a', '80/TCP').paths[0]!.steps.map((s) => s.direction)).toEqual(['ingress']);
    expect(ask(w, '10.0.0.2', 'y/a', '80/TCP').verdict).toBe('deny');
    expect(ask(w, '192.168.0.1', 'y/a', '80/TCP').verdict).toBe('deny');
    expect(ask(w, 'x/a', '10.0.1.1', '80/TCP')).toMatchObject({ verdict: 'allow', paths: [{ source: '10.0.0.1', destination: '10.0.1.1' }] });
  });

  it('a pod with both families is allowed only if every family is: the reason says which differs', () => {
    const v6only = world(netpol('x', 'v6', '{ podSelector: { matchLabels: { pod: b } }, ingress: [ { from: [ { ipBlock: { cidr: "fd00::/64" } } ] } ] }'));
    const e = ask(v6only, 'x/a', 'x/b', '80/TCP');
    expect(e.verdict).toBe('deny');
    expect(e.paths.map((p) => [p.destination, p.verdict])).toEqual([
      ['10.0.0.2', 'deny'],
      ['fd00::2', 'allow'],
    ]);
    expect(e.reason).toMatch(/^over IPv4 \(10\.0\.0\.1 → 10\.0\.0\.2\): x\/b is isolated .*; allowed over IPv6 \(fd00::1 → fd00::2\)$/);
    expect(ask(v6only, 'x/a', 'fd00::2', '80/TCP').verdict).toBe('allow');
    // y/a has no IPv6 address: it cannot reach x/b over IPv6, so only IPv4 is judged.
    expect(ask(v6only, 'y/a', 'x/b', '80/TCP').paths.map((p) => [p.source, p.destination])).toEqual([['10.0.1.1', '10.0.0.2']]);
    expect(ask(v6only, 'fd00::1', 'x/b', '80/TCP').verdict).toBe('allow');
  });
});

describe('ports', () => {
  it('endPort ranges are inclusive and per protocol', () => {
    const w = world(netpol('y', 'range', '{ podSelector: {}, ingress: [ { ports: [ { port: 80, endPort: 81 } ] } ] }'));
    expect(ask(w, 'x/a', 'y/a', '80/TCP').verdict).toBe('allow');
    expect(ask(w, 'x/a', 'y/a', '81').verdict).toBe('allow');
    expect(ask(w, 'x/a', 'y/a', '82/TCP').verdict).toBe('deny');
    expect(ask(w, 'x/a', 'y/a', '80/UDP').verdict).toBe('deny');
  });

  it('an ingress named port resolves on the selected pod, an egress one on the peer', () => {
    const ing = world(netpol('x', 'named', '{ podSelector: {}, ingress: [ { ports: [ { port: http } ] } ] }'));
    expect(ask(ing, 'y/a', 'x/a', '8080/TCP').verdict).toBe('allow');
    expect(ask(ing, 'y/a', 'x/a', '80/TCP').verdict).toBe('deny');
    expect(ask(ing, 'y/a', 'x/b', '80/TCP').verdict).toBe('allow');
    const eg = world(netpol('y', 'out', '{ podSelector: {}, policyTypes: [Egress], egress: [ { ports: [ { port: http } ] } ] }'));
    expect(ask(eg, 'y/a', 'x/a', '8080/TCP').verdict).toBe('allow');
    expect(ask(eg, 'y/a', 'x/b', '8080/TCP').verdict).toBe('deny');
  });

  it('a port name in the query resolves on the destination pod with its own protocol, TCP first', () => {
    const w = world(netpol('x', 'udp', '{ podSelector: {}, ingress: [ { ports: [ { protocol: UDP } ] } ] }'));
    expect(ask(w, 'y/a', 'x/a', 'http')).toMatchObject({ judged: '8080/TCP', verdict: 'deny' });
    expect(ask(w, 'y/a', 'x/b', 'http').judged).toBe('80/TCP');
    expect(ask(w, 'y/a', 'x/b', 'dns')).toMatchObject({ judged: '53/TCP', verdict: 'deny' });
    expect(ask(w, 'y/a', 'x/b', 'dns/UDP')).toMatchObject({ judged: '53/UDP', verdict: 'allow' });
  });

  it('an unknown pod or port is NOT_FOUND, a malformed query BAD_QUERY', () => {
    const w = world();
    expect(() => ask(w, 'x/a', 'x/zz', '80')).toThrow(expect.objectContaining({ code: ExplainCode.NOT_FOUND, message: 'no pod x/zz' }));
    expect(() => ask(w, 'x/a', 'y/a', 'http')).toThrow(expect.objectContaining({ code: ExplainCode.NOT_FOUND, message: 'y/a has no port named http' }));
    expect(() => ask(w, 'x/a', '10.9.9.9', 'http')).toThrow(expect.objectContaining({ code: ExplainCode.BAD_QUERY }));
    expect(() => ask(w, 'x/a', 'y/a', '70000')).toThrow(expect.objectContaining({ code: ExplainCode.BAD_QUERY }));
    expect(() => ask(w, 'x/a', 'y/a', '80/ICMP')).toThrow(expect.objectContaining({ code: ExplainCode.BAD_QUERY }));
    expect(() => ask(w, '10.9.9.8', '10.9.9.9', '80')).toThrow(expect.objectContaining({ code: ExplainCode.BAD_QUERY }));
    expect(() => ask(w, 'example.com', 'x/a', '80')).toThrow(expect.objectContaining({ code: ExplainCode.BAD_QUERY }));
    expect(() => ask(w, '10.9.9.8', 'example.com', '80')).toThrow(expect.objectContaining({ code: ExplainCode.BAD_QUERY }));
  });
});

describe('the node', () => {
  it('ingress from the node\'s own address always passes; offline there is no node address', () => {
    const deny = netpol('x', 'deny', '{ podSelector: {} }');
    const live = world(deny, { nodeIps: ['10.0.255.1'] });
    const e = ask(live, '10.0.255.1', 'x/a', '80/TCP');
    expect(e).toMatchObject({ verdict: 'allow', rules: [] });
    expect(e.reason).toContain("10.0.255.1 is the node's own address");
    expect(ask(world(deny), '10.0.255.1', 'x/a', '80/TCP').verdict).toBe('deny');
  });

  it('egress to the node is judged like any address: no selector matches it', () => {
    const w = world(netpol('x', 'pods', '{ podSelector: {}, policyTypes: [Egress], egress: [ { to: [ { namespaceSelector: {} } ] } ] }'), { nodeIps: ['10.0.255.1'] });
    expect(ask(w, 'x/a', '10.0.255.1', '10250').verdict).toBe('deny');
  });
});

describe('DNS names (offline: PRODUCT.md §7)', () => {
  const fq = (egress: string) => fqdnpol('x', 'names', `{ podSelector: { matchLabels: { pod: a } }, egress: ${egress} }`);

  it('a not egress-isolated pod reaches every name', () => {
    expect(ask(world(), 'x/a', 'api.example.com', '443')).toMatchObject({ verdict: 'allow', rules: [] });
  });

  it('*.example.com matches one label, not two, nor the bare domain', () => {
    const w = world(fq('[ { toFQDNs: [ { matchPattern: "*.example.com" } ], ports: [ { port: 443 } ] } ]'));
    expect(ask(w, 'x/a', 'a.example.com', '443/TCP')).toMatchObject({ verdict: 'allow', rules: ['x/names'] });
    expect(ask(w, 'x/a', 'A.Example.COM.', '443/TCP').verdict).toBe('allow');
    expect(ask(w, 'x/a', 'a.b.example.com', '443/TCP')).toMatchObject({ verdict: 'deny', rules: ['x/names'] });
    expect(ask(w, 'x/a', 'example.com', '443/TCP').verdict).toBe('deny');
  });

  it('**. matches one or more labels; * alone matches every name; matchName is exact', () => {
    const w = world(fq('[ { toFQDNs: [ { matchPattern: "**.example.com" } ], ports: [ { port: 443 } ] }, { toFQDNs: [ { matchName: api.github.com } ], ports: [ { port: 22 } ] } ]'));
    expect(ask(w, 'x/a', 'a.b.example.com', '443').verdict).toBe('allow');
    expect(ask(w, 'x/a', 'example.com', '443').verdict).toBe('deny');
    expect(ask(w, 'x/a', 'api.github.com', '22').verdict).toBe('allow');
    expect(ask(w, 'x/a', 'www.api.github.com', '22').verdict).toBe('deny');
    const all = world(fq('[ { toFQDNs: [ { matchPattern: "*" } ], ports: [ { port: 443 } ] } ]'));
    expect(ask(all, 'x/a', 'anything.at.all', '443').verdict).toBe('allow');
  });

  it('ports absent mean every port and protocol; a name matched on other ports only says so', () => {
    const any = world(fq('[ { toFQDNs: [ { matchName: example.com } ] } ]'));
    expect(ask(any, 'x/a', 'example.com', '5353/UDP').verdict).toBe('allow');
    const tls = world(fq('[ { toFQDNs: [ { matchName: example.com } ], ports: [ { port: 443 } ] } ]'));
    const e = ask(tls, 'x/a', 'example.com', '80/TCP');
    expect(e.verdict).toBe('deny');
    expect(e.reason).toBe(
      'x/a is isolated for egress by FQDNPolicy x/names; none of its FQDN rules matches example.com on 80/TCP, and no egress rule allows every destination on 80/TCP; FQDNPolicy x/names egress rule 0 matches example.com on other ports only',
    );
    expect(ask(tls, 'x/a', 'example.com', '443/UDP').verdict).toBe('deny');
  });

  it('the union with NetworkPolicy egress: any destination, or ipBlocks covering 0.0.0.0/0 and ::/0', () => {
    const names = fq('[ { toFQDNs: [ { matchName: example.com } ], ports: [ { port: 443 } ] } ]');
    const open80 = world(`${names}---\n${netpol('x', 'web', '{ podSelector: { matchLabels: { pod: a } }, policyTypes: [Egress], egress: [ { ports: [ { port: 80 } ] } ] }')}`);
    expect(ask(open80, 'x/a', 'example.org', '80')).toMatchObject({ verdict: 'allow', rules: ['x/web'] });
    expect(ask(open80, 'x/a', 'example.com', '443')).toMatchObject({ verdict: 'allow', rules: ['x/names'] });
    expect(ask(open80, 'x/a', 'example.com', '22').verdict).toBe('deny');
    const blocks = (cidrs: string) => netpol('x', 'world', `{ podSelector: { matchLabels: { pod: a } }, policyTypes: [Egress], egress: [ { to: [ ${cidrs} ], ports: [ { port: 80 } ] } ] }`);
    const both = world(`${names}---\n${blocks('{ ipBlock: { cidr: 0.0.0.0/0 } }, { ipBlock: { cidr: "::/0" } }')}`);
    expect(ask(both, 'x/a', 'example.org', '80')).toMatchObject({ verdict: 'allow', rules: ['x/world'] });
    const v4 = world(`${names}---\n${blocks('{ ipBlock: { cidr: 0.0.0.0/0 } }')}`);
    expect(ask(v4, 'x/a', 'example.org', '80').verdict).toBe('deny');
    const except = world(`${names}---\n${blocks('{ ipBlock: { cidr: 0.0.0.0/0, except: [ 10.0.0.0/8 ] } }, { ipBlock: { cidr: "::/0" } }')}`);
    expect(ask(except, 'x/a', 'example.org', '80').verdict).toBe('deny');
    const pods = world(`${names}---\n${blocks('{ namespaceSelector: {} }')}`);
    expect(ask(pods, 'x/a', 'example.org', '80').verdict).toBe('deny');
  });

  it('FQDN rules never open pods or addresses offline', () => {
    const w = world(fq('[ { toFQDNs: [ { matchPattern: "*" } ] } ]'));
    expect(ask(w, 'x/a', '93.184.216.34', '443').verdict).toBe('deny');
    expect(ask(w, 'x/a', 'x/b', '443').verdict).toBe('deny');
  });

  it('DNS of an FQDN-selected pod goes to the proxy whatever the policy', () => {
    const w = world(fq('[]'));
    for (const to of ['10.53.0.10', 'x/b']) {
      const e = ask(w, 'x/a', to, '53/UDP');
      expect(e.verdict).toBe('allow');
      expect(e.reason).toContain("x/a's DNS is intercepted");
    }
    expect(ask(w, 'x/a', '10.53.0.10', '53/SCTP').verdict).toBe('deny');
    expect(ask(w, 'x/a', 'dns.example', '53/TCP').verdict).toBe('allow');
  });
});

describe('DNS names (live: learned addresses)', () => {
  const names = fqdnpol('x', 'names', '{ podSelector: { matchLabels: { pod: a } }, egress: [ { toFQDNs: [ { matchPattern: "*.example.com" } ], ports: [ { port: 443 } ] } ] }');
  const learned = (table: Record<string, Array<[string, number]>>): Learned => ({
    addressesOf: (name) => (table[name] ?? []).map(([ip, expiresInMs]) => ({ ip, expiresInMs })),
    namesOf: (ip) => Object.entries(table).flatMap(([name, ips]) => ips.filter(([i]) => i === ip).map(([, expiresInMs]) => ({ name, expiresInMs }))),
  });

  it('an address learned for a matching name is allowed on the rule\'s ports, as the datapath allows it', () => {
    const w = world(names, { learned: learned({ 'www.example.com': [['93.184.216.34', 30_000]] }) });
    const e = ask(w, 'x/a', '93.184.216.34', '443');
    expect(e).toMatchObject({ verdict: 'allow', rules: ['x/names'] });
    expect(e.reason).toContain('93.184.216.34 was learned for www.example.com (30s left)');
    expect(ask(w, 'x/a', '93.184.216.34', '80').reason).toContain('matches www.example.com (30s left) but allows other ports only');
    expect(ask(w, 'x/a', '93.184.216.35', '443').verdict).toBe('deny');
  });

  it('an expired address is denied, and says so', () => {
    const w = world(names, { learned: learned({ 'www.example.com': [['93.184.216.34', -1]] }) });
    const e = ask(w, 'x/a', '93.184.216.34', '443');
    expect(e.verdict).toBe('deny');
    expect(e.reason).toContain('93.184.216.34 was learned for FQDNPolicy x/names egress rule 0 (www.example.com) but has expired');
  });

  it('a name is judged on its live addresses; with none left, as if answered now', () => {
    const w = world(names, { learned: learned({ 'www.example.com': [['93.184.216.34', 30_000], ['93.184.216.35', -5]] }) });
    const e = ask(w, 'x/a', 'www.example.com', '443');
    expect(e).toMatchObject({ verdict: 'allow', learned: [{ ip: '93.184.216.34' }, { ip: '93.184.216.35' }] });
    expect(e.paths.map((p) => p.destination)).toEqual(['93.184.216.34']);
    const gone = world(names, { learned: learned({ 'www.example.com': [['93.184.216.35', -5]] }) });
    const g = ask(gone, 'x/a', 'www.example.com', '443');
    expect(g.verdict).toBe('allow');
    expect(g.reason).toMatch(/^www\.example\.com: every address learned for it has expired/);
  });
});

describe('audit mode', () => {
  it('what only audit-mode policies deny passes, with the would-be deny', () => {
    const w = world(netpol('y', 'deny', '{ podSelector: {} }', '{ sluice.dev/enforcement: audit }'));
    const e = ask(w, 'x/a', 'y/a', '80/TCP');
    expect(e.verdict).toBe('allow');
    expect(e.audit).toEqual({ policies: ['y/deny'], reason: 'y/a is isolated for ingress in audit mode only, by y/deny; no ingress rule allows x/a on 80/TCP: it passes, reported as audit' });
    expect(e.paths[0]!.steps[1]!.outcome).toBe('audit');
  });

  it('an enforcing policy decides alone: no audit where it allows, a deny where it does not', () => {
    const audit = netpol('y', 'audit', '{ podSelector: {} }', '{ sluice.dev/enforcement: audit }');
    const w = world(`${audit}---\n${netpol('y', 'web', '{ podSelector: {}, ingress: [ { ports: [ { port: 80 } ] } ] }')}`);
    expect(ask(w, 'x/a', 'y/a', '80/TCP')).toMatchObject({ verdict: 'allow', rules: ['y/web'] });
    expect(ask(w, 'x/a', 'y/a', '80/TCP').audit).toBeUndefined();
    expect(ask(w, 'x/a', 'y/a', '81/TCP')).toMatchObject({ verdict: 'deny', rules: ['y/web'] });
  });
});

describe('every allowing rule is named', () => {
  it('two policies with the very same rule (one datapath entry): both are in the chain', () => {
    const rule = '{ podSelector: { matchLabels: { pod: a } }, ingress: [ { from: [ { podSelector: { matchLabels: { pod: b } } } ] } ] }';
    const w = world(netpol('x', 'one', rule) + '---\n' + netpol('x', 'two', rule));
    // The compiler keeps one entry for the two identical rules: both rules stay on it.
    expect(w.compiled.endpoints.get('x/a')!.entries.filter((e) => e.direction === 'ingress')).toHaveLength(1);
    const e = ask(w, 'x/b', 'x/a', '8080/TCP');
    expect(e).toMatchObject({ verdict: 'allow', rules: ['x/one', 'x/two'] });
    expect(e.reason).toMatch(/x\/one ingress rule 0 .*x\/two ingress rule 0/);
  });
});
