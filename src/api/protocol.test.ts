import { describe, expect, it } from 'vitest';
import { AgentApiError, ApiCode } from './errors.js';
import { API_MAGIC, encodeAnswer, encodeRequest, errorAnswer, parseAnswer, parseRequest } from './protocol.js';

function thrown(f: () => unknown): AgentApiError {
  try {
    f();
  } catch (err) {
    return err as AgentApiError;
  }
  return expect.unreachable('it did not throw');
}

describe('requests', () => {
  it('are the magic line and one JSON line, and parse back', () => {
    const wire = encodeRequest('flows', { pod: 'x/a', since: 3 });
    expect(wire).toBe(`${API_MAGIC}{"method":"flows","params":{"pod":"x/a","since":3}}\n`);
    expect(parseRequest(wire.slice(API_MAGIC.length, -1))).toEqual({ method: 'flows', params: { pod: 'x/a', since: 3 } });
    // No params: the key is left out, as JSON.stringify leaves undefined out.
    expect(encodeRequest('status')).toBe(`${API_MAGIC}{"method":"status"}\n`);
    expect(parseRequest('{"method":"status"}')).toEqual({ method: 'status', params: undefined });
  });

  it.each([
    ['{"method":', /^malformed request: /],
    ['null', /^malformed request: not a JSON object$/],
    ['[]', /^malformed request: not a JSON object$/],
    ['"status"', /^malformed request: not a JSON object$/],
    ['{}', /^method missing$/],
    ['{"method":5}', /^method missing$/],
  ])('%j is SLUICE_API_BAD_REQUEST', (line, message) => {
    const err = thrown(() => parseRequest(line));
    expect(err).toBeInstanceOf(AgentApiError);
    expect(err.code).toBe(ApiCode.BAD_REQUEST);
    expect(err.message).toMatch(message);
  });
});

describe('answers', () => {
  it('carry 64-bit counters as decimal strings', () => {
    const line = encodeAnswer({ ok: true, result: [{ reason: 'policy-denied', packets: 18446744073709551615n, bytes: 0n }] });
    expect(line).toBe('{"ok":true,"result":[{"reason":"policy-denied","packets":"18446744073709551615","bytes":"0"}]}\n');
    expect(parseAnswer(line)).toEqual([{ reason: 'policy-denied', packets: '18446744073709551615', bytes: '0' }]);
  });

  it('carry an error\'s code, or SLUICE_API when it has none', () => {
    expect(errorAnswer(new AgentApiError(ApiCode.NOT_FOUND, 'no endpoint for pod x/a on this node'))).toEqual({
      ok: false,
      error: { code: 'SLUICE_API_NOT_FOUND', message: 'no endpoint for pod x/a on this node' },
    });
    expect(errorAnswer(new Error('boom'))).toEqual({ ok: false, error: { code: 'SLUICE_API', message: 'boom' } });
    expect(errorAnswer(Object.assign(new Error('denied'), { code: 'EPERM' })).ok).toBe(false);
    expect(errorAnswer(Object.assign(new Error('denied'), { code: 'EPERM' }))).toMatchObject({ error: { code: 'EPERM' } });
    expect(errorAnswer('a string')).toEqual({ ok: false, error: { code: 'SLUICE_API', message: 'a string' } });
  });

  it('parse back into the result or the AgentApiError they carry', () => {
    expect(parseAnswer('{"ok":true}')).toBeUndefined();
    const err = thrown(() => parseAnswer(encodeAnswer(errorAnswer(new AgentApiError(ApiCode.UNKNOWN_METHOD, 'unknown method x')))));
    expect(err).toBeInstanceOf(AgentApiError);
    expect(err).toMatchObject({ code: 'SLUICE_API_UNKNOWN_METHOD', message: 'unknown method x' });
    expect(thrown(() => parseAnswer('{"ok":false}'))).toMatchObject({ code: 'SLUICE_API', message: 'request failed' });
  });

  it.each(['', 'garbage', 'null', '42'])('%j is a malformed answer', (text) => {
    expect(thrown(() => parseAnswer(text))).toMatchObject({ code: 'SLUICE_API', message: `malformed answer from the agent: ${text}` });
  });
});
