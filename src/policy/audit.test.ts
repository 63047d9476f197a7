// Audit mode in the compiler (PRODUCT.md §4): per direction, enforcing
// policies decide when any selects the pod, else audit-mode ones do; an
// audit-mode policy's entries never reach a direction an enforcing policy
// decides, and never narrow it.
import { describe, expect, it } from 'vitest';
import { compile, type EndpointInput } from './compile.js';
import { parseFqdnPolicy } from './fqdn.js';
import { ENFORCEMENT_ANNOTATION, parseNetworkPolicy } from './netpol.js';

const namespaces = new Map([['x', { 'kubernetes.io/metadata.name': 'x' }]]);
const pod = (name: string, ip: string): EndpointInput => ({ key: `x.${name}`, namespace: 'x', name, ips: [ip], labels: { pod: name }, namedPorts: [] });
const a = pod('a', '10.0.0.1');
const b = pod('b', '10.0.0.2');
const np = (name: string, spec: unknown, enforcement?: string) =>
  parseNetworkPolicy({ metadata: { name, namespace: 'x', ...(enforcement === undefined ? {} : { annotations: { [ENFORCEMENT_ANNOTATION]: enforcement } }) }, spec });
const fq = (name: string, enforcement?: string, dns?: string) =>
  parseFqdnPolicy({ metadata: { name, namespace: 'x' }, spec: { podSelector: {}, ...(dns ? { dns } : {}), ...(enforcement ? { enforcement } : {}), egress: [{ toFQDNs: [{ matchName: 'a.example' }] }] } });
const denyAll = { podSelector: {}, policyTypes: ['Ingress', 'Egress'] };
const fromB = { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] };

function of(policies: ReturnType<typeof np>[], fqdnPolicies: ReturnType<typeof fq>[] = []) {
  const c = compile({ namespaces, endpoints: [a, b], policies, fqdnPolicies, nodeIps: [] });
  return { c, ep: c.endpoints.get(a.key)! };
}

describe('audit mode', () => {
  it('the annotation reads audit or enforce in any case; anything else enforces, with a warning', () => {
    expect(np('p', denyAll, 'audit').audit).toBe(true);
    expect(np('p', denyAll, 'Audit').audit).toBe(true);
    expect(np('p', denyAll, 'enforce').audit).toBe(false);
    expect(np('p', denyAll).audit).toBe(false);
    const typo = np('p', denyAll, 'audti');
    expect(typo.audit).toBe(false);
    expect(of([typo]).c.warnings).toEqual([expect.stringContaining('"audti" is neither audit nor enforce: the policy is enforced')]);
    expect(of([typo]).ep).toMatchObject({ ingressIsolated: true, egressIsolated: true, ingressAudit: false, egressAudit: false });
  });

  it('an audit-only pod is not isolated but audited, with the audit policy\'s entries, in each direction it names', () => {
    const { ep } = of([np('audit', fromB, 'audit')]);
    expect(ep).toMatchObject({ ingressIsolated: false, egressIsolated: false, ingressAudit: true, egressAudit: false, ingressBy: ['x/audit'], egressBy: [] });
    expect(ep.entries.map((e) => [e.direction, e.ref.policy])).toEqual([['ingress', 'x/audit']]);
  });

  it('an enforcing policy decides its direction: the audit policy\'s entries are left out there and kept in the other', () => {
    const enforceIngress = np('enf', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'a' } } }] }] });
    const auditBoth = np('aud', { podSelector: {}, policyTypes: ['Ingress', 'Egress'], ingress: [{}], egress: [{}] }, 'audit');
    const { ep } = of([enforceIngress, auditBoth]);
    expect(ep).toMatchObject({ ingressIsolated: true, ingressAudit: false, egressIsolated: false, egressAudit: true, ingressBy: ['x/enf'], egressBy: ['x/aud'] });
    // ingress: only x/enf's rule (the audit policy's allow-all does not widen it); egress: x/aud's
    expect(ep.entries.map((e) => `${e.direction} ${e.ref.policy}`)).toEqual(['ingress x/enf', 'egress x/aud']);
    expect(ep.selectedBy).toEqual(['x/enf', 'x/aud']);
  });

  it('FQDNPolicy spec.enforcement: Audit audits egress, still intercepts DNS, never refuses names', () => {
    const { ep, c } = of([], [fq('f', 'Audit', 'MatchedOnly')]);
    expect(ep).toMatchObject({ egressIsolated: false, egressAudit: true, dnsIntercept: true, dns: 'AllowAll', egressBy: ['FQDNPolicy x/f'] });
    expect(ep.fqdnRules).toHaveLength(1);
    expect(c.fqdnRules.size).toBe(1); // the proxy learns its names
    expect(() => fq('g', 'Later')).toThrow(/spec.enforcement must be Enforce or Audit/);
  });

  it('an enforcing FQDNPolicy decides egress: an audit one\'s rules are left out, and so is an audit NetworkPolicy\'s egress', () => {
    const auditEgress = np('aud', { podSelector: {}, policyTypes: ['Egress'], egress: [{}] }, 'audit');
    const { ep } = of([auditEgress], [fq('enf', undefined, 'MatchedOnly'), fq('aud', 'Audit')]);
    expect(ep).toMatchObject({ egressIsolated: true, egressAudit: false, dns: 'MatchedOnly', egressBy: ['FQDNPolicy x/enf'] });
    expect(ep.fqdnRules).toHaveLength(1);
    expect(ep.entries.every((e) => e.ref.policy === 'x/enf')).toBe(true);
  });

  it('an enforcing NetworkPolicy egress with an audit FQDNPolicy: enforced by the NetworkPolicy alone', () => {
    const { ep } = of([np('enf', denyAll)], [fq('aud', 'Audit')]);
    expect(ep).toMatchObject({ egressIsolated: true, egressAudit: false, fqdnRules: [], entries: [], egressBy: ['x/enf'], dnsIntercept: true });
  });
});
