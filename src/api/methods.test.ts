import { describe, expect, it } from 'vitest';
import { AgentApiError, ApiCode } from './errors.js';
import { isMethod, METHODS, type Method } from './methods.js';

/** The error a params check throws, or undefined if it accepts. */
function rejection(method: Method, params: unknown): AgentApiError | undefined {
  try {
    METHODS[method].parseParams(params);
    return undefined;
  } catch (err) {
    return err as AgentApiError;
  }
}

describe('params checks', () => {
  it('take absent or null params as none (explain aside: it needs its flow)', () => {
    for (const method of (Object.keys(METHODS) as Method[]).filter((m) => m !== 'explain')) {
      expect(METHODS[method].parseParams(undefined)).toEqual({});
      expect(METHODS[method].parseParams(null)).toEqual({});
      expect(METHODS[method].parseParams({})).toEqual({});
    }
  });

  it('pass what fits through unchanged', () => {
    expect(METHODS.fqdn.parseParams({ pod: 'ci/builder' })).toEqual({ pod: 'ci/builder' });
    const flows = { since: 41, pod: 'x/a', verdict: 'dropped', limit: 0 };
    expect(METHODS.flows.parseParams(flows)).toEqual(flows);
    expect(METHODS.flows.parseParams({ verdict: 'allowed' })).toEqual({ verdict: 'allowed' });
  });

  it.each<[Method, unknown, RegExp]>([
    ['status', { pod: 'x/a' }, /^status: unknown param "pod" \(it takes none\)$/],
    ['metrics', { verbose: true }, /^metrics: unknown param "verbose"/],
    ['fqdn', { pods: 'x/a' }, /^fqdn: unknown param "pods" \(it takes pod\)$/],
    ['fqdn', { pod: 5 }, /^fqdn: pod must be a string, not 5$/],
    ['fqdn', { pod: null }, /^fqdn: pod must be a string, not null$/],
    ['flows', { verdict: 'DROPPED' }, /^flows: verdict must be "allowed", "dropped" or "audit", not "DROPPED"$/],
    ['flows', { since: '3' }, /^flows: since must be a whole number ≥ 0, not "3"$/],
    ['flows', { since: -1 }, /since must be a whole number/],
    ['flows', { limit: 2.5 }, /limit must be a whole number/],
    ['flows', { limit: 1e300 }, /limit must be a whole number/],
    ['flows', { Limit: 5 }, /unknown param "Limit" \(it takes since, pod, verdict, limit\)/],
    ['flows', [1, 2], /^flows: params must be an object, not \[1,2\]$/],
    ['fqdn', 'x/a', /^fqdn: params must be an object, not "x\/a"$/],
    ['explain', undefined, /^explain: from, to, port required$/],
    ['explain', { from: 'x/a', to: 'y/b' }, /^explain: port required$/],
    ['explain', { from: 'x/a', to: 'y/b', port: 80 }, /^explain: port must be a string, not 80$/],
    ['explain', { from: 'x/a', to: 'y/b', port: '80', pod: 'x/a' }, /^explain: unknown param "pod" \(it takes from, to, port\)$/],
  ])('%s %j: SLUICE_API_BAD_PARAMS', (method, params, message) => {
    const err = rejection(method, params);
    expect(err).toBeInstanceOf(AgentApiError);
    expect(err?.code).toBe(ApiCode.BAD_PARAMS);
    expect(err?.message).toMatch(message);
  });

  it('quote a huge value only in part', () => {
    const err = rejection('fqdn', { pod: ['x'.repeat(100_000)] });
    expect(err?.code).toBe(ApiCode.BAD_PARAMS);
    expect(err!.message.length).toBeLessThan(200);
    expect(err!.message).toMatch(/…$/);
  });

  it('do not take an inherited property for a param', () => {
    expect(rejection('fqdn', JSON.parse('{"__proto__": {"pod": 1}}'))?.message).toMatch(/unknown param "__proto__"/);
    expect(rejection('status', { toString: 'x' })?.message).toMatch(/unknown param "toString"/);
  });
});

describe('isMethod', () => {
  it('knows the table and nothing inherited', () => {
    expect(['status', 'policies', 'fqdn', 'flows', 'metrics', 'endpoints'].every(isMethod)).toBe(true);
    for (const name of ['', 'Status', 'constructor', '__proto__', 'toString', 'hasOwnProperty']) expect(isMethod(name)).toBe(false);
  });
});
