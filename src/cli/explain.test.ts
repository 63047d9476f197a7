import { describe, expect, it } from 'vitest';
import { UsageError } from '../config/index.js';
import { parseExplainArgs } from './explain.js';

const parse = (...argv: string[]) => parseExplainArgs(argv, {});

describe('sluice explain flags', () => {
  it('takes the flow, the source of policy and the output format', () => {
    expect(parse('--from', 'x/a', '--to', 'api.example.com', '--port', '443', '--manifests', 'dir', '-o', 'json')).toEqual({
      query: { from: 'x/a', to: 'api.example.com', port: '443' },
      manifests: 'dir',
      runDir: '/run/sluice',
      format: 'json',
    });
    expect(parse('--from', '10.0.0.1', '--to', 'y/b', '--port', 'http', '--live')?.manifests).toBeUndefined();
    expect(parse('--help')).toBeUndefined();
  });

  it.each([
    [['--to', 'y/b', '--port', '80'], '--from is required'],
    [['--from', 'x/a', '--to', 'y/b', '--port', '80', '--manifests', 'd', '--live'], '--manifests and --live exclude each other'],
    [['--from', 'x/a', '--to', 'y/b', '--port', '80/ICMP'], 'port: "80/ICMP": the protocol must be TCP, UDP or SCTP'],
    [['--from', 'api.example.com', '--to', 'y/b', '--port', '80'], 'from: "api.example.com" is not a pod NS/NAME or an IP address'],
    [['--from', 'x/a', '--to', 'y/b', '--port', '80', 'extra'], 'unexpected argument extra'],
  ])('%j is a usage error: %s', (argv, message) => {
    expect(() => parse(...argv)).toThrow(UsageError);
    expect(() => parse(...argv)).toThrow(message);
  });
});
