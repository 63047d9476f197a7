import { describe, expect, it } from 'vitest';
import { parseArgs, parseDurationMs, parseIntFlag, podFlag, UsageError } from './args.js';

const specs = [
  { name: 'state-dir', help: 'state', default: '/var/lib/sluice' },
  { name: 'follow', help: 'follow', boolean: true },
  { name: 'output', help: 'format', short: 'o', default: 'table' },
];

describe('parseArgs', () => {
  it('takes flags, then env, then defaults', () => {
    const p = parseArgs(['--follow', 'x', '-o', 'json'], specs, { SLUICE_STATE_DIR: '/tmp/s' });
    expect(p.flags).toEqual({ 'state-dir': '/tmp/s', follow: 'true', output: 'json' });
    expect(p.positional).toEqual(['x']);
    expect(parseArgs(['--state-dir=/a'], specs, { SLUICE_STATE_DIR: '/tmp/s' }).flags['state-dir']).toBe('/a');
    expect(parseArgs([], specs, {}).flags['state-dir']).toBe('/var/lib/sluice');
  });
  it('rejects unknown flags and missing values', () => {
    expect(() => parseArgs(['--nope'], specs, {})).toThrow(UsageError);
    expect(() => parseArgs(['--state-dir'], specs, {})).toThrow(/needs a value/);
    expect(() => parseArgs(['--follow=maybe'], specs, {})).toThrow(/takes no value/);
  });
});

describe('parseDurationMs', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['1m30s', 90_000],
    ['60', 60_000],
    ['1.5', 1500],
    ['2h', 7_200_000],
  ])('%s', (text, ms) => expect(parseDurationMs(text)).toBe(ms));
  it.each(['', 'abc', '10x', '5s garbage', '-1s'])('rejects %j', (text) => {
    expect(() => parseDurationMs(text)).toThrow(UsageError);
  });
});

describe('podFlag', () => {
  it('takes NS/NAME, or nothing', () => {
    expect(podFlag('ci/builder')).toBe('ci/builder');
    expect(podFlag('')).toBeUndefined();
    expect(podFlag(undefined)).toBeUndefined();
  });
  it.each(['builder', 'a/b/c', '/b', 'a/', 'a /b'])('rejects %j', (v) => expect(() => podFlag(v)).toThrow(UsageError));
});

describe('parseIntFlag', () => {
  it('takes a whole decimal number within its bounds', () => {
    expect(parseIntFlag('dns-pod-qps', '0', 0, 1_000_000)).toBe(0);
    expect(parseIntFlag('dns-pod-qps', ' 200 ', 0, 1_000_000)).toBe(200);
    expect(parseIntFlag('dns-tcp-max', '65536', 1, 65_536)).toBe(65_536);
  });
  it('rejects anything else with the flag, the bounds and the value in the message', () => {
    for (const bad of ['', '-1', '2.5', '1e3', '0x10', 'ten', '99999999999999999999']) {
      expect(() => parseIntFlag('dns-pod-qps', bad, 0, 1_000_000)).toThrow(UsageError);
    }
    expect(() => parseIntFlag('dns-tcp-max', '0', 1, 65_536)).toThrow('--dns-tcp-max must be an integer from 1 to 65536, not "0"');
    expect(() => parseIntFlag('dns-tcp-max', undefined, 1, 65_536)).toThrow(/not ""/);
  });
});
