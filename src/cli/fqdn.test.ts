import { describe, expect, it } from 'vitest';
import { UsageError } from '../config/index.js';
import { FQDN_USAGE, fqdnTable, parseFqdnArgs } from './fqdn.js';

describe('parseFqdnArgs', () => {
  it('defaults to every name, table output, /run/sluice', () => {
    expect(parseFqdnArgs([], {})).toEqual({ pod: undefined, runDir: '/run/sluice', format: 'table' });
  });
  it('takes --pod, --run-dir and -o, flags over env', () => {
    expect(parseFqdnArgs(['--pod', 'ci/builder', '--run-dir=/tmp/r', '-o', 'json'], {})).toEqual({ pod: 'ci/builder', runDir: '/tmp/r', format: 'json' });
    expect(parseFqdnArgs([], { SLUICE_POD: 'ci/x', SLUICE_RUN_DIR: '/e', SLUICE_OUTPUT: 'json' })).toEqual({ pod: 'ci/x', runDir: '/e', format: 'json' });
    expect(parseFqdnArgs(['--pod', 'ci/y'], { SLUICE_POD: 'ci/x' })?.pod).toBe('ci/y');
  });
  it('answers --help with undefined', () => {
    expect(parseFqdnArgs(['--help'], {})).toBeUndefined();
    expect(parseFqdnArgs(['-h'], {})).toBeUndefined();
  });
  it.each([
    [['--pod', 'builder'], /NS\/NAME/],
    [['--pod', 'a/b/c'], /NS\/NAME/],
    [['-o', 'yaml'], /table or json/],
    [['api.github.com'], /unexpected argument/],
    [['--verdict', 'dropped'], /unknown flag/],
    [['--pod'], /needs a value/],
  ])('rejects %j', (argv, message) => {
    expect(() => parseFqdnArgs(argv, {})).toThrow(UsageError);
    expect(() => parseFqdnArgs(argv, {})).toThrow(message);
  });
});

describe('fqdnTable', () => {
  const rule = (policy: string, rule: number) => ({ policy, kind: 'FQDNPolicy' as const, direction: 'egress' as const, rule });

  it('prints one row per (name, address) with time left and rules', () => {
    const text = fqdnTable([
      { name: 'objects.githubusercontent.com', ips: [{ ip: '185.199.108.133', expiresInMs: 65_200 }], rules: [rule('ci/allow-github', 1)] },
      {
        name: 'api.github.com',
        ips: [
          { ip: '140.82.112.6', expiresInMs: 26_400 },
          { ip: '2606:50c0:8000::64', expiresInMs: 0 },
        ],
        rules: [rule('ci/allow-github', 0), rule('ci/also', 2)],
      },
    ]);
    expect(text).toBe(
      [
        'NAME                           IP                  TTL LEFT  RULES',
        'api.github.com                 140.82.112.6        27s       ci/allow-github#0,ci/also#2',
        'api.github.com                 2606:50c0:8000::64  expired   ci/allow-github#0,ci/also#2',
        'objects.githubusercontent.com  185.199.108.133     1m6s      ci/allow-github#1',
        '',
      ].join('\n'),
    );
  });
  it('shows names without addresses or rules with dashes', () => {
    expect(fqdnTable([{ name: 'gone.example.com', ips: [], rules: [] }])).toBe('NAME              IP  TTL LEFT  RULES\ngone.example.com  -   -         -\n');
  });
  it('prints names as learned, escapes and all, one column each (an escape has no space in it)', () => {
    const text = fqdnTable([
      { name: 'dot.example.test', ips: [{ ip: '192.0.2.1', expiresInMs: 10_000 }], rules: [rule('lbl/dot', 0)] },
      { name: 'dot\\.example.test', ips: [{ ip: '203.0.113.66', expiresInMs: 10_000 }], rules: [] },
      { name: 'sp\\032ace\\\\\\200.example.test', ips: [{ ip: '203.0.113.67', expiresInMs: 10_000 }], rules: [] },
    ]);
    const rows = text.trimEnd().split('\n').slice(1).map((l) => l.split(/\s+/));
    expect(rows).toHaveLength(3);
    expect(rows).toContainEqual(['dot\\.example.test', '203.0.113.66', '10s', '-']);
    expect(rows).toContainEqual(['dot.example.test', '192.0.2.1', '10s', 'lbl/dot#0']);
    expect(rows).toContainEqual(['sp\\032ace\\\\\\200.example.test', '203.0.113.67', '10s', '-']);
  });

  it('--help says how names are written', () => {
    expect(FQDN_USAGE).toContain('a dot inside a label is \\.');
    expect(FQDN_USAGE).toContain('dot\\.example.test (labels "dot.example" and "test")');
  });

  it('prints only the header when nothing is learned', () => {
    expect(fqdnTable([])).toBe('NAME  IP  TTL LEFT  RULES\n');
  });
});
