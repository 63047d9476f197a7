// Unit tests of the NetworkPolicy model: it is the oracle of the truth table,
// so its reading of the API has to be pinned down on its own.
import { describe, expect, it } from 'vitest';
import { coveringPrefix } from '../helpers/cluster.js';
import { netpol } from './cases.js';
import { allowed, expectedMatrix, ModelError, parseCidr, parseIp, parsePolicy, verdict, type ModelPod, type Probe, type World } from './model.js';

function mkPod(namespace: string, name: string, ip4: string, ip6: string, extra: Record<string, string> = {}, alt?: number): ModelPod {
  return {
    namespace,
    name,
    labels: { pod: name, ...extra },
    ports: [
      { name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' },
      { name: 'serve-81-tcp', containerPort: 81, protocol: 'TCP' },
      { name: 'serve-80-udp', containerPort: 80, protocol: 'UDP' },
      ...(alt ? [{ name: 'alt-tcp', containerPort: alt, protocol: 'TCP' as const }] : []),
    ],
    ips: [ip4, ip6],
  };
}

const xa = mkPod('x', 'a', '10.66.0.2', 'fd00:66::2');
const xb = mkPod('x', 'b', '10.66.0.3', 'fd00:66::3', {}, 81);
const ya = mkPod('y', 'a', '10.66.0.4', 'fd00:66::4', { role: 'db' });
const yb = mkPod('y', 'b', '10.66.0.5', 'fd00:66::5', {}, 81);
const zc = mkPod('z', 'c', '10.66.0.6', 'fd00:66::6', {}, 80);
const world: World = {
  namespaces: ['x', 'y', 'z'].map((n) => ({ name: n, labels: { ns: n, 'kubernetes.io/metadata.name': n } })),
  pods: [xa, xb, ya, yb, zc],
};
const tcp80: Probe = { protocol: 'TCP', port: 80, family: 4 };
const tcp81: Probe = { protocol: 'TCP', port: 81, family: 4 };
const udp80: Probe = { protocol: 'UDP', port: 80, family: 4 };
const tcp80v6: Probe = { ...tcp80, family: 6 };

const P = (ns: string, spec: Record<string, unknown>) => [parsePolicy(netpol(ns, 'p', spec))];

describe('policyTypes defaulting', () => {
  it('absent: Ingress only, even with no rules', () => {
    const [p] = P('x', { podSelector: {} });
    expect([p!.ingress, p!.egress]).toEqual([true, false]);
  });
  it('absent with egress rules: Ingress and Egress; with egress: [] Ingress only', () => {
    expect(P('x', { podSelector: {}, egress: [{}] }).map((p) => [p.ingress, p.egress])).toEqual([[true, true]]);
    expect(P('x', { podSelector: {}, egress: [] }).map((p) => [p.ingress, p.egress])).toEqual([[true, false]]);
    expect(P('x', { podSelector: {}, policyTypes: [], egress: [{}] }).map((p) => [p.ingress, p.egress])).toEqual([[true, true]]);
  });
  it('explicit types win: ingress rules of an Egress-only policy are ignored', () => {
    const ps = P('x', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] });
    expect(allowed(world, ps, ya, xa, tcp80)).toBe(true); // x/a is not ingress-isolated
    expect(allowed(world, ps, xa, xb, tcp80)).toBe(false); // and may not send anything
    expect(verdict(world, ps, xa, xb, tcp80)).toEqual({ allowed: false, egress: 'denied', ingress: 'not-isolated' });
  });
});

describe('selectors', () => {
  it('empty podSelector selects every pod of the policy namespace only', () => {
    const ps = P('x', { podSelector: {} });
    expect(allowed(world, ps, ya, xa, tcp80)).toBe(false);
    expect(allowed(world, ps, ya, xb, tcp80)).toBe(false);
    expect(allowed(world, ps, xa, yb, tcp80)).toBe(true);
  });
  it('matchExpressions: In, NotIn (matches an absent key), Exists, DoesNotExist, ANDed with matchLabels', () => {
    const sel = (expr: Record<string, unknown>) => P('y', { podSelector: { matchExpressions: [expr] } });
    expect(allowed(world, sel({ key: 'role', operator: 'In', values: ['db'] }), xa, ya, tcp80)).toBe(false);
    expect(allowed(world, sel({ key: 'role', operator: 'In', values: ['db'] }), xa, yb, tcp80)).toBe(true);
    expect(allowed(world, sel({ key: 'role', operator: 'NotIn', values: ['db'] }), xa, yb, tcp80)).toBe(false);
    expect(allowed(world, sel({ key: 'role', operator: 'NotIn', values: ['db'] }), xa, ya, tcp80)).toBe(true);
    expect(allowed(world, sel({ key: 'role', operator: 'Exists' }), xa, ya, tcp80)).toBe(false);
    expect(allowed(world, sel({ key: 'role', operator: 'DoesNotExist' }), xa, ya, tcp80)).toBe(true);
    expect(allowed(world, sel({ key: 'role', operator: 'DoesNotExist' }), xa, yb, tcp80)).toBe(false);
    const both = P('y', { podSelector: { matchLabels: { pod: 'a' }, matchExpressions: [{ key: 'role', operator: 'DoesNotExist' }] } });
    expect(allowed(world, both, xa, ya, tcp80)).toBe(true);
  });
  it('invalid selectors are rejected as the API server would', () => {
    const bad = (expr: Record<string, unknown>) => () => P('x', { podSelector: { matchExpressions: [expr] } });
    expect(bad({ key: 'pod', operator: 'Within', values: ['a'] })).toThrow(ModelError);
    expect(bad({ key: 'pod', operator: 'In', values: [] })).toThrow(ModelError);
    expect(bad({ key: 'pod', operator: 'Exists', values: ['a'] })).toThrow(ModelError);
    expect(() => P('x', { podSelector: {}, ingress: [{ from: [{}] }] })).toThrow(ModelError);
    expect(() => P('x', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] } }] }] })).toThrow(ModelError);
    expect(() => P('x', { podSelector: {}, ingress: [{ ports: [{ port: 'serve-80-tcp', endPort: 90 }] }] })).toThrow(ModelError);
    expect(() => P('x', { podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 80 }] }] })).toThrow(ModelError);
  });
});

describe('peers', () => {
  const from = (peers: unknown[]) => P('x', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: peers }] });
  it('podSelector alone: the policy namespace; namespaceSelector alone: whole namespaces', () => {
    const own = from([{ podSelector: { matchLabels: { pod: 'b' } } }]);
    expect([xb, yb, ya].map((s) => allowed(world, own, s, xa, tcp80))).toEqual([true, false, false]);
    const nsY = from([{ namespaceSelector: { matchLabels: { ns: 'y' } } }]);
    expect([xb, ya, yb, zc].map((s) => allowed(world, nsY, s, xa, tcp80))).toEqual([false, true, true, false]);
  });
  it('both in one peer AND, as two peers OR', () => {
    const and = from([{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }]);
    expect([xb, ya, yb].map((s) => allowed(world, and, s, xa, tcp80))).toEqual([false, false, true]);
    const or = from([{ namespaceSelector: { matchLabels: { ns: 'y' } } }, { podSelector: { matchLabels: { pod: 'b' } } }]);
    expect([xb, ya, yb, zc].map((s) => allowed(world, or, s, xa, tcp80))).toEqual([true, true, true, false]);
  });
  it('absent or empty from: every peer', () => {
    expect(allowed(world, P('x', { podSelector: {}, ingress: [{}] }), zc, xa, tcp80)).toBe(true);
    expect(allowed(world, P('x', { podSelector: {}, ingress: [{ from: [] }] }), zc, xa, tcp80)).toBe(true);
  });
  it('ipBlock with except matches pod IPs of its family only', () => {
    const ps = from([{ ipBlock: { cidr: '10.66.0.0/29', except: ['10.66.0.4/31'] } }]);
    expect([xb, ya, yb, zc].map((s) => allowed(world, ps, s, xa, tcp80))).toEqual([true, false, false, true]);
    expect(allowed(world, ps, xb, xa, tcp80v6)).toBe(false); // an IPv4 block: no IPv6 source is in it
    const v6 = from([{ ipBlock: { cidr: 'fd00:66::5/128' } }]);
    expect([allowed(world, v6, yb, xa, tcp80v6), allowed(world, v6, yb, xa, tcp80), allowed(world, v6, ya, xa, tcp80v6)]).toEqual([true, false, false]);
  });
});

describe('ports', () => {
  const ports = (p: unknown[], types?: string[]) => P('x', { podSelector: {}, ...(types ? { policyTypes: types } : {}), ingress: [{ ports: p }] });
  it('numbers default to TCP; a protocol without a port is the whole protocol', () => {
    const n = ports([{ port: 80 }]);
    expect([tcp80, tcp81, udp80].map((pr) => allowed(world, n, ya, xa, pr))).toEqual([true, false, false]);
    const u = ports([{ protocol: 'UDP' }]);
    expect([tcp80, tcp81, udp80].map((pr) => allowed(world, u, ya, xa, pr))).toEqual([false, false, true]);
  });
  it('endPort ranges are inclusive', () => {
    const r = ports([{ port: 81, endPort: 82 }]);
    expect([80, 81, 82, 83].map((port) => allowed(world, r, ya, xa, { ...tcp80, port }))).toEqual([false, true, true, false]);
  });
  it('named ports resolve on the destination pod, with the rule protocol', () => {
    const alt = ports([{ port: 'alt-tcp' }]);
    expect([xa, xb].map((d) => [tcp80, tcp81].map((pr) => allowed(world, alt, ya, d, pr)))).toEqual([
      [false, false], // x/a has no alt-tcp
      [false, true], // x/b: alt-tcp is 81
    ]);
    expect(allowed(world, ports([{ port: 'serve-80-udp' }]), ya, xa, udp80)).toBe(false); // TCP by default
    expect(allowed(world, ports([{ port: 'serve-80-udp', protocol: 'UDP' }]), ya, xa, udp80)).toBe(true);
    // Egress: resolved on the peer (x/a itself has no alt-tcp).
    const eg = P('x', { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'alt-tcp' }] }] });
    expect([yb, zc].map((d) => [tcp80, tcp81].map((pr) => allowed(world, eg, xa, d, pr)))).toEqual([
      [false, true],
      [true, false],
    ]);
  });
});

describe('combination', () => {
  it('policies are a union; egress of the source AND ingress of the destination', () => {
    const ps = [
      parsePolicy(netpol('x', 'p1', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 80 }] }] })),
      parsePolicy(netpol('x', 'p2', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }] }] })),
      parsePolicy(netpol('z', 'p3', { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 81 }] }] })),
    ];
    expect([tcp80, tcp81].map((pr) => allowed(world, ps, ya, xa, pr))).toEqual([true, false]);
    expect([tcp80, tcp81].map((pr) => allowed(world, ps, zc, xa, pr))).toEqual([false, true]); // z's egress only allows 81
    expect(verdict(world, ps, zc, xa, tcp80)).toEqual({ allowed: false, egress: 'denied', ingress: 'allowed' });
    const m = expectedMatrix(world, ps, tcp80);
    expect(m).toHaveLength(5);
    expect(m[2]).toEqual([true, true, true, true, true]); // y/a is not isolated; x/a admits y on 80
  });
  it('no policy: all allowed', () => {
    expect(expectedMatrix(world, [], udp80).flat().every(Boolean)).toBe(true);
  });
});

describe('addresses', () => {
  it('parses IPv4 and IPv6 (compressed, embedded IPv4) and rejects junk', () => {
    expect(parseIp('10.66.0.1')).toEqual({ family: 4, value: 0x0a420001n });
    expect(parseIp('fd00:66::1')?.value).toBe((0xfd00n << 112n) | (0x66n << 96n) | 1n);
    expect(parseIp('::ffff:10.0.0.1')?.value).toBe((0xffffn << 32n) | 0x0a000001n);
    expect(parseIp('::')).toEqual({ family: 6, value: 0n });
    for (const bad of ['10.66.0', '10.66.0.256', '1::2::3', 'fd00:66:1', '01.2.3.4']) expect(parseIp(bad), bad).toBeUndefined();
    expect(() => parseCidr('10.0.0.0/33')).toThrow(ModelError);
    expect(parseCidr('10.66.0.7/24')).toEqual({ family: 4, base: 0x0a420000n, len: 24 });
  });
  it('coveringPrefix (the harness helper cases use) finds the smallest common prefix', () => {
    expect(coveringPrefix(['10.66.0.2', '10.66.0.5', '10.66.0.9'])).toBe('10.66.0.0/28');
    expect(coveringPrefix(['10.66.0.2'])).toBe('10.66.0.2/32');
    expect(coveringPrefix(['fd00:66::2', 'fd00:66::a'])).toBe('fd00:66:0:0:0:0:0:0/124');
    expect(parseCidr(coveringPrefix(['fd00:66::2', 'fd00:66::a'])).len).toBe(124);
  });
});
