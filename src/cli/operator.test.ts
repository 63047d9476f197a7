import { describe, expect, it } from 'vitest';
import { formatEndpoints, formatStatus, statusExitCode, type StatusReply } from './operator.js';

const base: StatusReply = { nodeName: 'n1', mode: 'standalone', podCidrs: ['10.0.0.0/24', 'fd00::/64'], endpoints: 2, allocations: 2, manifests: [] };

describe('formatStatus', () => {
  it('prints the node summary alone for an agent without policies or FQDN state', () => {
    expect(formatStatus(base)).toBe('node:        n1\nmode:        standalone\npod CIDRs:   10.0.0.0/24, fd00::/64\nendpoints:   2\nallocations: 2\n');
  });

  it('adds the DNS proxy counters, manifests and one line per policy condition', () => {
    const text = formatStatus({
      ...base,
      manifests: [{ file: 'a.yaml', ok: true, objects: 3 }],
      policies: [
        { kind: 'NetworkPolicy', policy: 'ci/web', accepted: true, reason: 'Valid', message: '', previousInForce: false },
        { kind: 'FQDNPolicy', policy: 'ci/bad', accepted: false, reason: 'Invalid', message: 'spec.egress[0].toFQDNs[0].matchName: invalid name "a..b"', previousInForce: true },
        { kind: 'FQDNPolicy', policy: 'ci/allow-github', accepted: true, reason: 'Valid', message: '', previousInForce: false },
      ],
      fqdn: { names: 2, ips: 3, entries: 3, proxy: { queries: 7, forwarded: 6, refused: 1, learnedAnswers: 5 } },
      warnings: ['ci/builder: more than 16 FQDN rules select it; ci/many rule 16 is not applied'],
    });
    expect(text).toBe(
      [
        'node:        n1',
        'mode:        standalone',
        'pod CIDRs:   10.0.0.0/24, fd00::/64',
        'endpoints:   2',
        'allocations: 2',
        'fqdn:        2 names, 3 addresses (3 datapath entries)',
        'dns proxy:   queries 7, forwarded 6, refused 1, learned-answers 5',
        '',
        'MANIFEST  STATE    OBJECTS  ERROR',
        'a.yaml    applied  3',
        '',
        'KIND           POLICY           CONDITION       REASON   MESSAGE',
        'FQDNPolicy     ci/allow-github  Accepted=True   Valid',
        'FQDNPolicy     ci/bad           Accepted=False  Invalid  spec.egress[0].toFQDNs[0].matchName: invalid name "a..b" (the previous version stays in force)',
        'NetworkPolicy  ci/web           Accepted=True   Valid',
        '',
        'WARNINGS',
        '  ci/builder: more than 16 FQDN rules select it; ci/many rule 16 is not applied',
        '',
      ].join('\n'),
    );
  });
});

describe('formatStatus in Kubernetes mode', () => {
  it('shows the trusted resolvers, the API server with each kind\'s objects, and the routes', () => {
    const text = formatStatus({
      ...base,
      mode: 'kubernetes',
      fqdn: { names: 0, ips: 0, entries: 0, proxy: {}, trusted: ['10.96.0.10', '10.244.1.7'] },
      kubernetes: {
        server: 'https://10.96.0.1:443',
        reflectors: [
          { kind: 'Pod', synced: true, objects: 12, resourceVersion: '9', lists: 1, watches: 1, events: 4 },
          { kind: 'FQDNPolicy', synced: true, objects: 0, resourceVersion: '', lists: 2, watches: 0, events: 0, error: 'not served' },
        ],
        routes: [{ dst: '10.244.2.0/24', gateway: '10.200.0.12' }],
      },
    });
    expect(text).toContain('trusted dns: 10.96.0.10, 10.244.1.7\n');
    expect(text).toContain('kubernetes:  https://10.96.0.1:443; Pod 12, FQDNPolicy 0 (failing)\n');
    expect(text).toContain('routes:      10.244.2.0/24 via 10.200.0.12\n');
    expect(formatStatus({ ...base, fqdn: { names: 0, ips: 0, entries: 0, proxy: {}, trusted: [] } })).toContain('trusted dns: (none: intercepted queries are refused)');
  });
});

describe('formatStatus per-pod DNS', () => {
  it('lists each pod\'s DNS drops over its budgets and what it holds, after the counters', () => {
    const text = formatStatus({
      ...base,
      fqdn: {
        names: 0,
        ips: 0,
        entries: 0,
        proxy: { queries: 9, overInflight: 3, tcpOverLimit: 2, rateLimited: 120 },
        pods: [
          { pod: 'fair/flooder', rateLimited: 120, overInflight: 3, tcpOverLimit: 2, inflight: 64, tcpConnections: 8 },
          { pod: 'fair/victim', rateLimited: 0, overInflight: 0, tcpOverLimit: 0, inflight: 1, tcpConnections: 0 },
        ],
      },
    });
    expect(text.split('\n').slice(5)).toEqual([
      'fqdn:        0 names, 0 addresses (0 datapath entries)',
      'dns proxy:   queries 9, over-inflight 3, tcp-over-limit 2, rate-limited 120',
      '',
      'DNS POD       RATE-LIMITED  OVER-INFLIGHT  TCP-OVER-LIMIT  IN-FLIGHT  TCP-CONNS',
      'fair/flooder  120           3              2               64         8',
      'fair/victim   0             0              0               1          0',
      '',
    ]);
  });

  it('prints no pod table when no pod had DNS dropped or holds any', () => {
    expect(formatStatus({ ...base, fqdn: { names: 0, ips: 0, entries: 0, proxy: {}, pods: [] } })).not.toContain('DNS POD');
  });
});

describe('statusExitCode', () => {
  it('is 1 when a manifest or a policy is rejected', () => {
    expect(statusExitCode(base)).toBe(0);
    expect(statusExitCode({ ...base, manifests: [{ file: 'x.yaml', ok: false, error: 'bad', objects: 0 }] })).toBe(1);
    expect(statusExitCode({ ...base, policies: [{ kind: 'FQDNPolicy', policy: 'a/b', accepted: false, reason: 'Invalid', message: 'm', previousInForce: false }] })).toBe(1);
  });
});

describe('status problems', () => {
  it('are listed and make the exit status 1', () => {
    const s = { ...base, problems: ['endpoint c.eth0: policy could not be programmed since T: E2BIG (it drops all traffic; retrying)'] };
    expect(formatStatus(s)).toContain('\nPROBLEMS\n  endpoint c.eth0: policy could not be programmed');
    expect(statusExitCode(s)).toBe(1);
    expect(statusExitCode({ ...base, problems: [] })).toBe(0);
  });
});

describe('formatStatus: version, sources, datapath and recent errors', () => {
  const full: StatusReply = {
    ...base,
    version: '0.1.0',
    startedAt: '2026-01-02T03:04:05.000Z',
    uptimeSeconds: 3725,
    sources: [{ name: 'standalone', synced: true }],
    datapath: {
      programs: [
        { program: 'sluice_from_pod', hook: 'tc ingress on pod veths', attached: 2, expected: 2 },
        { program: 'sluice_from_node', hook: 'tc ingress on node links', attached: 1 },
      ],
      nodeLinks: ['eth0'],
      maps: [
        { map: 'ct', entries: 12, capacity: 65536 },
        { map: 'endpoints', entries: 2, capacity: 8 },
      ],
      policyGeneration: 7,
    },
    recentErrors: [
      { time: '2026-01-02T03:05:00.000Z', level: 'error', subsystem: 'policy', message: 'policy could not be programmed', error: 'E2BIG', count: 3 },
      { time: '2026-01-02T03:06:00.000Z', level: 'fatal', subsystem: '', message: 'agent failed to start', count: 1 },
    ],
  };

  it('shows version and uptime, sources, the policy generation, node links, programs and map fill in order', () => {
    expect(formatStatus(full)).toBe(
      [
        'node:        n1',
        'version:     0.1.0, up 1h2m (since 2026-01-02T03:04:05.000Z)',
        'mode:        standalone',
        'sources:     standalone synced',
        'pod CIDRs:   10.0.0.0/24, fd00::/64',
        'endpoints:   2',
        'allocations: 2',
        'policy:      generation 7',
        'node links:  eth0',
        '',
        'PROGRAM           HOOK                      ATTACHED',
        'sluice_from_pod   tc ingress on pod veths   2 of 2',
        'sluice_from_node  tc ingress on node links  1',
        '',
        'MAP        ENTRIES  CAPACITY  FILL',
        'ct         12       65536     0.0%',
        'endpoints  2        8         25.0%',
        '',
        'RECENT ERRORS (oldest first)',
        '  2026-01-02T03:05:00.000Z policy: policy could not be programmed: E2BIG (3 times)',
        '  2026-01-02T03:06:00.000Z FATAL agent failed to start',
        '',
      ].join('\n'),
    );
  });

  it('says when a source is not in sync; recent errors alone do not make the exit status 1', () => {
    expect(formatStatus({ ...full, sources: [{ name: 'kubernetes', synced: false }] })).toContain('sources:     kubernetes NOT SYNCED\n');
    expect(formatStatus({ ...full, uptimeSeconds: 0 })).toContain('up 0s ');
    expect(statusExitCode(full)).toBe(0);
  });
});

describe('formatEndpoints', () => {
  it('shows identity, enforcement per direction, policy count and sorted labels', () => {
    const row = { pod: 'web/a', containerId: 'c1', ifname: 'eth0', hostIfname: 'slc1', netns: '/var/run/netns/a', ips: ['10.0.0.2/32'], programmed: true };
    expect(
      formatEndpoints([
        { ...row, identity: 256, labels: { tier: 'fe', app: 'web' }, ingress: 'enforce', egress: 'audit', policies: 2 },
        { ...row, pod: 'web/b', hostIfname: 'slc2', programmed: false, identity: null, labels: {}, ingress: 'none', egress: 'none', policies: 0 },
      ]),
    ).toBe(
      [
        'POD    IDENTITY  INGRESS  EGRESS  POLICIES  IPS          HOST IF  PROGRAMMED  LABELS',
        'web/a  256       enforce  audit   2         10.0.0.2/32  slc1     yes         app=web,tier=fe',
        'web/b  -         none     none    0         10.0.0.2/32  slc2     NO          -',
        '',
      ].join('\n'),
    );
  });
});
