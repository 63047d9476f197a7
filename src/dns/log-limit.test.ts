import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { RateLimitedLog } from './log-limit.js';

function recorder(level = 'debug') {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { log, lines };
}

describe('RateLimitedLog', () => {
  it('logs at most perWindow lines of a kind per window, then says how many it suppressed', () => {
    const { log, lines } = recorder();
    let now = 1_000;
    const r = new RateLimitedLog(log, { perWindow: 3, windowMs: 1_000, now: () => now });
    for (let i = 0; i < 10; i++) r.warn('flood', { i }, 'a line');
    r.error('other', {}, 'another kind');
    expect(lines.map((l) => [l.kind, l.i, l.suppressed])).toEqual([
      ['flood', 0, undefined],
      ['flood', 1, undefined],
      ['flood', 2, undefined],
      ['other', undefined, undefined],
    ]);
    now += 999;
    r.warn('flood', { i: 10 }, 'a line');
    expect(lines).toHaveLength(4);
    now += 1;
    r.warn('flood', { i: 11 }, 'a line');
    r.warn('flood', { i: 12 }, 'a line');
    expect(lines.slice(4).map((l) => [l.i, l.suppressed, l.level])).toEqual([
      [11, 8, 40],
      [12, undefined, 40],
    ]);
  });

  it('builds the fields of a line only when it is logged, and keeps its own keys over the caller\'s', () => {
    const { log, lines } = recorder();
    const r = new RateLimitedLog(log, { perWindow: 1, windowMs: 60_000 });
    let built = 0;
    const fields = () => {
      built++;
      return { kind: 'forged' };
    };
    r.error('k', fields, 'm');
    r.error('k', fields, 'm');
    expect(built).toBe(1);
    expect(lines).toMatchObject([{ kind: 'k', msg: 'm' }]);
  });

  it('neither logs nor counts debug lines when debug is off', () => {
    const { log, lines } = recorder('info');
    const r = new RateLimitedLog(log, { perWindow: 1, windowMs: 60_000 });
    r.debug('d', {}, 'hidden');
    log.level = 'debug';
    r.debug('d', {}, 'shown');
    expect(lines).toMatchObject([{ msg: 'shown' }]);
    expect(lines[0]).not.toHaveProperty('suppressed');
  });
});
