import { describe, expect, it } from 'vitest';
import type { Assertion } from './assertions.js';
import { explanationJson, explanationTable, resultJson, resultsTable, type AssertionResult } from './format.js';
import type { Explanation } from './types.js';

const denied: Explanation = {
  from: 'x/a',
  to: 'y/b',
  port: 'http',
  judged: '80/TCP',
  verdict: 'deny',
  reason: 'y/b is isolated for ingress by y/deny; no ingress rule allows x/a on 80/TCP',
  rules: ['y/deny'],
  paths: [
    {
      source: '10.0.0.1',
      destination: '10.0.0.2',
      verdict: 'deny',
      reason: 'y/b is isolated for ingress by y/deny; no ingress rule allows x/a on 80/TCP',
      rules: ['y/deny'],
      steps: [
        { direction: 'egress', pod: 'x/a', outcome: 'allow', isolatedBy: ['x/out'], rules: [{ policy: 'x/out', direction: 'egress', rule: 1 }], text: "x/a's egress to y/b on 80/TCP is allowed by x/out egress rule 1 (any peer)" },
        { direction: 'ingress', pod: 'y/b', outcome: 'deny', isolatedBy: ['y/deny'], rules: [], text: 'y/b is isolated for ingress by y/deny; no ingress rule allows x/a on 80/TCP' },
      ],
    },
  ],
};

const allowed: Explanation = {
  from: 'x/a',
  to: 'example.com',
  port: '443',
  judged: '443/TCP',
  verdict: 'allow',
  reason: "x/a's egress to example.com on 443/TCP is allowed by FQDNPolicy x/names egress rule 0 (toFQDNs example.com)",
  rules: ['x/names'],
  paths: [
    {
      verdict: 'allow',
      reason: "x/a's egress to example.com on 443/TCP is allowed by FQDNPolicy x/names egress rule 0 (toFQDNs example.com)",
      rules: ['x/names'],
      steps: [{ direction: 'egress', pod: 'x/a', outcome: 'allow', isolatedBy: ['FQDNPolicy x/names'], rules: [{ policy: 'x/names', kind: 'FQDNPolicy', direction: 'egress', rule: 0 }], text: "x/a's egress to example.com on 443/TCP is allowed by FQDNPolicy x/names egress rule 0 (toFQDNs example.com)" }],
    },
  ],
};

const assertion = (e: Explanation, expect: 'allow' | 'deny', n: number): Assertion => ({ where: `t.yaml#1 assertion ${n}`, from: e.from, to: e.to, port: e.port, expect });

describe('sluice explain output', () => {
  it('table: verdict, flow, rules, reason, then the chain per address pair with the matched rules', () => {
    expect(explanationTable(denied)).toBe(
      [
        'verdict: deny',
        'flow:    x/a -> y/b on 80/TCP',
        'rules:   y/deny',
        'reason:  y/b is isolated for ingress by y/deny; no ingress rule allows x/a on 80/TCP',
        'chain:',
        '  10.0.0.1 -> 10.0.0.2: deny',
        "    egress  x/a  allow: x/a's egress to y/b on 80/TCP is allowed by x/out egress rule 1 (any peer)",
        '      - x/out egress rule 1',
        '    ingress y/b  deny: y/b is isolated for ingress by y/deny; no ingress rule allows x/a on 80/TCP',
        '',
      ].join('\n'),
    );
    expect(explanationTable({ ...allowed, learned: [{ ip: '192.0.2.7', expiresInMs: 1500 }, { ip: '192.0.2.8', expiresInMs: -1 }] }).split('\n').slice(4, 8)).toEqual([
      'learned: 192.0.2.7 (2s left), 192.0.2.8 (expired)',
      'chain:',
      "  egress  x/a  allow: x/a's egress to example.com on 443/TCP is allowed by FQDNPolicy x/names egress rule 0 (toFQDNs example.com)",
      '    - FQDNPolicy x/names egress rule 0',
    ]);
  });

  it('JSON: verdict, rules and reason first, then the rest', () => {
    const json = explanationJson(denied);
    expect(Object.keys(json)).toEqual(['verdict', 'rules', 'reason', 'from', 'to', 'port', 'judged', 'paths']);
    expect(json).toMatchObject({ verdict: 'deny', rules: ['y/deny'], reason: denied.reason });
  });
});

describe('sluice test output', () => {
  const results: AssertionResult[] = [
    { assertion: assertion(allowed, 'allow', 1), explanation: allowed },
    { assertion: assertion(denied, 'allow', 2), explanation: denied },
    { assertion: { ...assertion(denied, 'deny', 3), port: 80 }, explanation: denied, probe: { agrees: true, text: 'timeout', probes: [] } },
    { assertion: assertion(allowed, 'allow', 4), explanation: allowed, probe: { agrees: false, text: 'timeout (so: deny)', probes: [] } },
  ];

  it('table: one ok/FAIL line per assertion (nothing else starts so), the chain of a failure indented, then the count', () => {
    expect(resultsTable(results)).toBe(
      [
        'ok    x/a -> example.com 443/TCP: allow (x/names)',
        'FAIL  x/a -> y/b http (80/TCP): expected allow, got deny',
        '      reason: y/b is isolated for ingress by y/deny; no ingress rule allows x/a on 80/TCP',
        '      rules:  y/deny',
        '      10.0.0.1 -> 10.0.0.2: deny',
        "        egress  x/a  allow: x/a's egress to y/b on 80/TCP is allowed by x/out egress rule 1 (any peer)",
        '          - x/out egress rule 1',
        '        ingress y/b  deny: y/b is isolated for ingress by y/deny; no ingress rule allows x/a on 80/TCP',
        '      (t.yaml#1 assertion 2)',
        'ok    x/a -> y/b 80/TCP: deny (y/deny) [probe: timeout]',
        'FAIL  x/a -> example.com 443/TCP: probe disagrees with the compiled allow: timeout (so: deny)',
        "      reason: x/a's egress to example.com on 443/TCP is allowed by FQDNPolicy x/names egress rule 0 (toFQDNs example.com)",
        '      rules:  x/names',
        "      egress  x/a  allow: x/a's egress to example.com on 443/TCP is allowed by FQDNPolicy x/names egress rule 0 (toFQDNs example.com)",
        '        - FQDNPolicy x/names egress rule 0',
        '      (t.yaml#1 assertion 4)',
        '2 passed, 2 failed',
        '',
      ].join('\n'),
    );
  });

  it('JSON: from, to, port and expect as written, verdict, rules, then whether it passed and why', () => {
    expect(resultJson(results[2]!)).toEqual({ from: 'x/a', to: 'y/b', port: 80, expect: 'deny', verdict: 'deny', rules: ['y/deny'], ok: true, reason: denied.reason, probe: { agrees: true, text: 'timeout', probes: [] } });
    expect(Object.keys(resultJson(results[1]!))).toEqual(['from', 'to', 'port', 'expect', 'verdict', 'rules', 'ok', 'reason']);
    expect(resultJson(results[3]!)).toMatchObject({ verdict: 'allow', expect: 'allow', ok: false });
  });
});
