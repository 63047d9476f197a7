// The recent-errors tee under a real pino logger: every line still reaches
// the destination; error and fatal lines are kept, repeats counted, the
// oldest dropped.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { RecentErrors } from './recent-errors.js';

function logger(recent: RecentErrors, level = 'info') {
  const lines: string[] = [];
  const log = pino({ level, base: { pid: 1 }, timestamp: pino.stdTimeFunctions.isoTime }, recent.tee({ write: (l: string) => void lines.push(l) }));
  return { log, lines };
}

describe('RecentErrors', () => {
  it('keeps the error and fatal lines of every child logger, passing every line on', () => {
    const recent = new RecentErrors();
    const { log, lines } = logger(recent);
    log.child({ subsystem: 'policy' }).info('policy programmed');
    log.child({ subsystem: 'policy' }).error({ error: 'E2BIG sluice_policy_v1' }, 'policy could not be programmed');
    log.warn('a warning');
    log.child({ subsystem: 'fqdn' }).error({ err: new Error('ENOSPC') }, 'FQDN sweep failed');
    log.fatal('agent failed to start');
    expect(lines).toHaveLength(5);
    const kept = recent.list();
    expect(kept.map(({ time: _t, ...e }) => e)).toEqual([
      { level: 'error', subsystem: 'policy', message: 'policy could not be programmed', error: 'E2BIG sluice_policy_v1', count: 1 },
      { level: 'error', subsystem: 'fqdn', message: 'FQDN sweep failed', error: 'ENOSPC', count: 1 },
      { level: 'fatal', subsystem: '', message: 'agent failed to start', count: 1 },
    ]);
    expect(kept[0]!.time).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('counts the same error logged again in a row, and keeps only the last ones', () => {
    const recent = new RecentErrors(3);
    const { log } = logger(recent);
    for (let i = 0; i < 4; i++) log.error({ error: 'EBADF' }, 'draining flow events failed');
    for (const n of ['a', 'b', 'c']) log.error(`failure ${n}`);
    const kept = recent.list();
    expect(kept.map((e) => [e.message, e.count])).toEqual([['failure a', 1], ['failure b', 1], ['failure c', 1]]);
    const again = new RecentErrors(3);
    const l2 = logger(again).log;
    for (let i = 0; i < 4; i++) l2.error({ error: 'EBADF' }, 'draining flow events failed');
    expect(again.list().map((e) => [e.message, e.count])).toEqual([['draining flow events failed', 4]]);
  });

  it('clips long texts and ignores what is not an error line', () => {
    const recent = new RecentErrors();
    recent.add('{"level":50,"msg":"x","err":{"message":"' + 'v'.repeat(1000) + '"}}');
    recent.add('{"level":40,"msg":"warn"}');
    recent.add('not json');
    const [e] = recent.list();
    expect(recent.list()).toHaveLength(1);
    expect(e!.error!.length).toBe(401);
  });
});
