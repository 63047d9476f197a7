// The truth-table cases: each one writes NetworkPolicy files (and, for some,
// edits Pod or Namespace labels) into the node's standalone directory, step
// by step; after every step the suite probes the whole 9×9 matrix and
// compares it with what test/netpol/model.ts computes from the same files.
// No case states an expected matrix: the model does.
//
// The world (see test/helpers/cluster.ts): namespaces x, y, z labelled
// ns=<name>; pods a, b, c in each labelled pod=<name>, every pod declaring
// serve-80-tcp (80/TCP), serve-81-tcp (81/TCP), serve-80-udp (80/UDP); pods b
// also name 81/TCP alt-tcp, pods c name 80/TCP alt-tcp, pods a have no
// alt-tcp (so a named port resolved on the wrong pod gives a different
// answer).
import type { Family, Labels, Protocol } from './model.js';

export type PodKey = `${'x' | 'y' | 'z'}/${'a' | 'b' | 'c'}`;

export interface ProbeSpec {
  protocol: Protocol;
  port: number;
}

export const DEFAULT_PROBES: readonly ProbeSpec[] = [
  { protocol: 'TCP', port: 80 },
  { protocol: 'TCP', port: 81 },
  { protocol: 'UDP', port: 80 },
];

/** What a case may ask of the live pods (their addresses come from CNI ADD). */
export interface CaseContext {
  ip(pod: PodKey, family?: Family): string;
  /** The pod's address as a host prefix: a.b.c.d/32 or x::y/128. */
  host(pod: PodKey, family?: Family): string;
  /** The smallest prefix holding every pod's address of the family. */
  podsPrefix(family?: Family): string;
}

/** A manifest: an object (written as YAML) or YAML text as-is. */
export type Doc = Record<string, unknown> | string;
export type DocSource = Doc | ((ctx: CaseContext) => Doc);

export interface Step {
  /** What the step does, for the failure report. */
  what: string;
  /** Policy files to write (key → document), or to remove (null). */
  policies?: Record<string, DocSource | null>;
  /** Files written with an invalid policy: the agent must reject them and keep what they held before. */
  invalid?: Record<string, DocSource>;
  /** Full label sets for pods (replacing the current ones). */
  podLabels?: Partial<Record<PodKey, Labels>>;
  /** Full label sets for namespaces (kubernetes.io/metadata.name is always added). */
  namespaceLabels?: Partial<Record<'x' | 'y' | 'z', Labels>>;
}

export interface NetpolCase {
  name: string;
  /** Which rule of the API the case pins down. */
  covers: string;
  probes?: readonly ProbeSpec[];
  families?: readonly Family[];
  steps: readonly Step[];
}

export function netpol(namespace: string, name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec };
}

const labels = (l: Record<string, string>) => ({ matchLabels: l });
const pod = (name: string) => labels({ pod: name });
const ns = (name: string) => labels({ ns: name });

/** One step that writes the given policies. */
function apply(policies: Record<string, DocSource>): Step[] {
  return [{ what: `apply ${Object.keys(policies).join(', ')}`, policies }];
}

export const CASES: readonly NetpolCase[] = [
  // ---------------------------------------------------------------- default deny
  {
    name: 'default-deny-ingress',
    covers: 'empty podSelector selects the whole namespace; absent policyTypes defaults to [Ingress]; no rules = deny',
    steps: apply({ deny: netpol('x', 'deny', { podSelector: {} }) }),
  },
  {
    name: 'default-deny-egress',
    covers: 'policyTypes [Egress] with no egress rules denies all egress, ingress untouched',
    steps: apply({ deny: netpol('x', 'deny', { podSelector: {}, policyTypes: ['Egress'] }) }),
  },
  {
    name: 'default-deny-both',
    covers: 'policyTypes [Ingress, Egress] with no rules isolates both directions',
    steps: apply({ deny: netpol('x', 'deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }) }),
  },
  {
    name: 'default-deny-ingress-every-namespace',
    covers: 'one deny policy per namespace: nothing reaches anything',
    steps: apply({
      x: netpol('x', 'deny', { podSelector: {} }),
      y: netpol('y', 'deny', { podSelector: {} }),
      z: netpol('z', 'deny', { podSelector: {} }),
    }),
  },
  {
    name: 'allow-all-ingress-unions-with-deny',
    covers: 'ingress: [{}] allows every peer and port; policies selecting the same pod are a union',
    steps: apply({
      deny: netpol('x', 'deny', { podSelector: {} }),
      allow: netpol('x', 'allow-a', { podSelector: pod('a'), ingress: [{}] }),
    }),
  },
  // ---------------------------------------------------------------- peers
  {
    name: 'allow-from-same-namespace',
    covers: 'a podSelector-only peer ({}) means every pod of the policy\'s namespace, no other',
    steps: apply({ p: netpol('x', 'same-ns', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }) }),
  },
  {
    name: 'allow-from-namespace-by-label',
    covers: 'a namespaceSelector-only peer means every pod of the matching namespaces',
    steps: apply({ p: netpol('x', 'from-y', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y') }] }] }) }),
  },
  {
    name: 'allow-from-pod-in-all-namespaces',
    covers: 'namespaceSelector {} with a podSelector in the same peer: that pod label in every namespace',
    steps: apply({ p: netpol('x', 'from-any-b', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {}, podSelector: pod('b') }] }] }) }),
  },
  {
    name: 'peer-namespace-and-pod-selector-is-and',
    covers: 'podSelector and namespaceSelector in one peer are ANDed',
    steps: apply({ p: netpol('x', 'from-y-b', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y'), podSelector: pod('b') }] }] }) }),
  },
  {
    name: 'peer-namespace-or-pod-selector-is-or',
    covers: 'podSelector and namespaceSelector as two peers are ORed (and the podSelector peer is the policy\'s namespace only)',
    steps: apply({ p: netpol('x', 'from-y-or-b', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y') }, { podSelector: pod('b') }] }] }) }),
  },
  {
    name: 'match-expressions-notin',
    covers: 'matchExpressions NotIn on both the selected pods and the peer namespaces',
    steps: apply({
      p: netpol('x', 'notin', {
        podSelector: { matchExpressions: [{ key: 'pod', operator: 'NotIn', values: ['a'] }] },
        ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['y'] }] } }] }],
      }),
    }),
  },
  {
    name: 'match-expressions-exists-doesnotexist-follow-pod-labels',
    covers: 'matchExpressions Exists / In / DoesNotExist; a pod label edit changes enforcement without restarting anything',
    steps: [
      {
        what: 'x admits pods a and b of every namespace unless they are quarantined',
        policies: {
          p: netpol('x', 'exprs', {
            podSelector: { matchExpressions: [{ key: 'pod', operator: 'Exists' }] },
            ingress: [
              {
                from: [
                  {
                    namespaceSelector: {},
                    podSelector: {
                      matchExpressions: [
                        { key: 'pod', operator: 'In', values: ['a', 'b'] },
                        { key: 'quarantine', operator: 'DoesNotExist' },
                      ],
                    },
                  },
                ],
              },
            ],
          }),
        },
      },
      { what: 'label y/a quarantine=true', podLabels: { 'y/a': { pod: 'a', quarantine: 'true' } } },
      { what: 'move the quarantine label from y/a to z/b', podLabels: { 'y/a': { pod: 'a' }, 'z/b': { pod: 'b', quarantine: 'true' } } },
    ],
  },
  {
    name: 'policy-only-affects-its-namespace',
    covers: 'a policy selects pods of its own namespace only, whatever the labels elsewhere',
    steps: apply({ p: netpol('y', 'deny-a', { podSelector: pod('a') }) }),
  },
  // ---------------------------------------------------------------- ports
  {
    name: 'ingress-port-by-number',
    covers: 'a numeric port with protocol defaulted to TCP; absent from = every peer',
    steps: apply({ p: netpol('x', 'tcp-81', { podSelector: pod('a'), ingress: [{ ports: [{ port: 81 }] }] }) }),
  },
  {
    name: 'ingress-named-port',
    covers: 'a named port (TCP by default) resolved on the selected pod',
    steps: apply({ p: netpol('x', 'named', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: 'serve-81-tcp' }] }] }) }),
  },
  {
    name: 'ingress-named-port-udp',
    covers: 'a named UDP port needs protocol: UDP',
    steps: apply({ p: netpol('x', 'named-udp', { podSelector: pod('a'), ingress: [{ ports: [{ port: 'serve-80-udp', protocol: 'UDP' }] }] }) }),
  },
  {
    name: 'ingress-named-port-differs-per-pod',
    covers: 'the same port name means 81 on pods b, 80 on pods c and nothing on pods a: resolved on each destination pod',
    steps: apply({ p: netpol('x', 'alt', { podSelector: {}, ingress: [{ ports: [{ port: 'alt-tcp' }] }] }) }),
  },
  {
    name: 'endport-range-80-81',
    covers: 'port + endPort is an inclusive range (TCP by default, so UDP 80 is not in it)',
    steps: apply({ p: netpol('x', 'range', { podSelector: pod('a'), ingress: [{ ports: [{ port: 80, endPort: 81 }] }] }) }),
  },
  {
    name: 'endport-range-boundaries',
    covers: 'ranges 81-65535/TCP and 1-79/UDP: 80 lies outside both',
    steps: apply({
      p: netpol('x', 'range', {
        podSelector: pod('a'),
        ingress: [{ ports: [{ port: 81, endPort: 65535, protocol: 'TCP' }, { port: 1, endPort: 79, protocol: 'UDP' }] }],
      }),
    }),
  },
  {
    name: 'udp-only',
    covers: 'a port entry with a protocol and no port allows every port of that protocol only',
    steps: apply({ p: netpol('x', 'udp', { podSelector: pod('a'), ingress: [{ ports: [{ protocol: 'UDP' }] }] }) }),
  },
  {
    name: 'tcp-and-udp-on-the-same-port-are-distinct',
    covers: 'UDP/80 allowed does not allow TCP/80 (ingress), TCP/80 allowed does not allow UDP/80 (egress)',
    steps: apply({
      in: netpol('x', 'udp-80-in', { podSelector: pod('a'), ingress: [{ ports: [{ port: 80, protocol: 'UDP' }] }] }),
      out: netpol('y', 'tcp-80-out', { podSelector: pod('b'), policyTypes: ['Egress'], egress: [{ ports: [{ port: 80 }] }] }),
    }),
  },
  // ---------------------------------------------------------------- ipBlock
  {
    name: 'ipblock-one-pod',
    covers: 'an ipBlock /32 matches that pod\'s address',
    steps: apply({ p: (c) => netpol('x', 'one-ip', { podSelector: pod('a'), ingress: [{ from: [{ ipBlock: { cidr: c.host('y/b') } }] }] }) }),
  },
  {
    name: 'ipblock-except-one-pod',
    covers: 'ipBlock except carves a pod out of the block',
    steps: apply({
      p: (c) => netpol('x', 'all-but-zc', { podSelector: pod('a'), ingress: [{ from: [{ ipBlock: { cidr: c.podsPrefix(), except: [c.host('z/c')] } }] }] }),
    }),
  },
  {
    name: 'ipblock-world-except-pods',
    covers: 'egress to 0.0.0.0/0 except the pods\' prefix reaches no pod; a second rule opens the own namespace',
    steps: apply({
      p: (c) =>
        netpol('x', 'world', {
          podSelector: {},
          policyTypes: ['Egress'],
          egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: [c.podsPrefix()] } }] }, { to: [{ podSelector: {} }] }],
        }),
    }),
  },
  // ---------------------------------------------------------------- egress
  {
    name: 'egress-to-namespace',
    covers: 'an egress namespaceSelector peer',
    steps: apply({ p: netpol('x', 'to-y', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: ns('y') }] }] }) }),
  },
  {
    name: 'egress-named-port-resolved-on-peer',
    covers: 'an egress named port is resolved on the destination (peer) pod, not on the selected one (which lacks it)',
    steps: apply({
      p: netpol('x', 'to-alt', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {}, podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] } }], ports: [{ port: 'alt-tcp' }] }] }),
    }),
  },
  {
    name: 'egress-and-ingress-must-both-allow',
    covers: 'a flow needs the source\'s egress AND the destination\'s ingress',
    steps: apply({
      out: netpol('x', 'a-to-y', { podSelector: pod('a'), policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: ns('y') }] }] }),
      in: netpol('y', 'b-from-z', { podSelector: pod('b'), ingress: [{ from: [{ namespaceSelector: ns('z') }] }] }),
    }),
  },
  {
    name: 'union-of-policies-with-ports',
    covers: 'two policies on one pod: each rule keeps its own peers and ports',
    steps: apply({
      p1: netpol('x', 'y-on-80', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y') }], ports: [{ port: 80 }] }] }),
      p2: netpol('x', 'z-on-81', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('z') }], ports: [{ port: 81, protocol: 'TCP' }] }] }),
    }),
  },
  // ---------------------------------------------------------------- policyTypes defaulting
  {
    name: 'explicit-egress-type-ignores-ingress-rules',
    covers: 'policyTypes [Egress] with no egress rules denies egress; the ingress rules present are ignored (not isolated)',
    steps: apply({
      p: netpol('x', 'egress-only', { podSelector: pod('a'), policyTypes: ['Egress'], ingress: [{ from: [{ podSelector: pod('b') }] }] }),
    }),
  },
  {
    name: 'egress-rules-default-to-both-types',
    covers: 'absent policyTypes with egress rules defaults to [Ingress, Egress]: the selected pod also becomes ingress-isolated',
    steps: apply({ p: netpol('x', 'egress-rules', { podSelector: pod('a'), egress: [{ to: [{ podSelector: {} }] }] }) }),
  },
  {
    name: 'empty-egress-list-is-ingress-only',
    covers: 'egress: [] is no egress rule: policyTypes defaults to [Ingress] alone (written as YAML text)',
    steps: apply({
      p: [
        'apiVersion: networking.k8s.io/v1',
        'kind: NetworkPolicy',
        'metadata:',
        '  name: empty-egress',
        '  namespace: x',
        'spec:',
        '  podSelector:',
        '    matchLabels: {pod: a}',
        '  egress: []',
        '  ingress:',
        '  - from:',
        '    - podSelector:',
        '        matchLabels: {pod: c}',
        '',
      ].join('\n'),
    }),
  },
  // ---------------------------------------------------------------- live changes
  {
    name: 'pod-label-changes',
    covers: 'which pods a policy selects and which peers it admits follow Pod manifest label edits',
    steps: [
      {
        what: 'lock pods labelled locked=true in x, label x/b locked; x/a admits role=client pods of x',
        policies: {
          locked: netpol('x', 'locked', { podSelector: labels({ locked: 'true' }), policyTypes: ['Ingress'] }),
          clients: netpol('x', 'clients', { podSelector: pod('a'), ingress: [{ from: [{ podSelector: labels({ role: 'client' }) }] }] }),
        },
        podLabels: { 'x/b': { pod: 'b', locked: 'true' } },
      },
      { what: 'label x/c role=client', podLabels: { 'x/c': { pod: 'c', role: 'client' } } },
      { what: 'move locked=true from x/b to x/c', podLabels: { 'x/b': { pod: 'b' }, 'x/c': { pod: 'c', role: 'client', locked: 'true' } } },
    ],
  },
  {
    name: 'namespace-label-changes',
    covers: 'namespaceSelector peers follow Namespace manifest label edits',
    steps: [
      { what: 'x admits namespaces labelled team=blue (none yet)', policies: { p: netpol('x', 'blue', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: labels({ team: 'blue' }) }] }] }) } },
      { what: 'label namespace y team=blue', namespaceLabels: { y: { ns: 'y', team: 'blue' } } },
      { what: 'move team=blue from y to z', namespaceLabels: { y: { ns: 'y' }, z: { ns: 'z', team: 'blue' } } },
    ],
  },
  {
    name: 'invalid-policy-keeps-previous',
    covers: 'a file whose policy is invalid (unknown selector operator) is rejected whole and the previous version stays in force; a fix applies',
    steps: [
      { what: 'x/a admits namespace y', policies: { p: netpol('x', 'guarded', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('y') }] }] }) } },
      {
        what: 'overwrite the file: admit namespace z, with a bad operator',
        invalid: {
          p: netpol('x', 'guarded', {
            podSelector: pod('a'),
            ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'Within', values: ['z'] }] } }] }],
          }),
        },
      },
      { what: 'fix the file: admit namespace z', policies: { p: netpol('x', 'guarded', { podSelector: pod('a'), ingress: [{ from: [{ namespaceSelector: ns('z') }] }] }) } },
    ],
  },
  // ---------------------------------------------------------------- IPv6
  {
    name: 'ipv6-default-deny',
    covers: 'default deny (both types) denies IPv4 and IPv6 alike',
    families: [4, 6],
    steps: apply({ deny: netpol('x', 'deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }) }),
  },
  {
    name: 'ipv6-ipblock',
    covers: 'an IPv6 ipBlock (/128 of a pod) matches over IPv6 only; IPv4 traffic from that pod is not in the block',
    families: [4, 6],
    steps: apply({ p: (c) => netpol('x', 'v6-block', { podSelector: pod('a'), ingress: [{ from: [{ ipBlock: { cidr: c.host('y/b', 6) } }] }] }) }),
  },
];
