import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { FlowEvent } from '../datapath/index.js';
import { FLOW_CHANNEL, FlowLog, type Flow } from './flow-log.js';

const EVENT: FlowEvent = { timestampNs: 1n, ifindex: 7, reason: 0, direction: 0, family: 4, protocol: 6, saddr: '10.0.0.1', daddr: '10.0.0.2', sport: 1234, dport: 80 };

/** A ring buffer whose first `failures` drains throw, then yields one event per drain. */
function flakyReader(failures: number) {
  let calls = 0;
  return {
    drain: (): FlowEvent[] => {
      calls++;
      if (calls <= failures) throw new Error(`decode failed (${calls})`);
      return [{ ...EVENT, sport: calls }];
    },
    close: () => undefined,
  };
}

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'error' }, sink), lines };
}

const names = { podOfIfindex: () => 'x/a', nameOfAddress: () => '' };

afterEach(() => {
  vi.useRealTimers();
});

describe('FlowLog drain timer', () => {
  it('survives throwing drains: counts them, logs them rate-limited, and keeps draining', async () => {
    vi.useFakeTimers();
    const { log, lines } = capture();
    const flows = new FlowLog(flakyReader(30), names, log);
    const seen: Flow[] = [];
    const listener = (f: unknown) => void seen.push(f as Flow);
    FLOW_CHANNEL.subscribe(listener);
    try {
      flows.start();
      // 30 failing ticks of 50 ms, then 10 good ones. On the old code the
      // first tick's throw escaped the timer callback.
      vi.advanceTimersByTime(40 * 50);
      flows.stop();
    } finally {
      FLOW_CHANNEL.unsubscribe(listener);
    }
    expect(flows.stats.drainErrors).toBe(30);
    expect(flows.stats.lastError).toBe('decode failed (30)');
    // The timer kept running after the failures: events drained by it arrived.
    expect(seen.length).toBeGreaterThanOrEqual(10);
    expect(seen[0]).toMatchObject({ pod: 'x/a', verdict: 'allowed', dst: '10.0.0.2', dstPort: 80 });
    // 30 failures within 1.5 s: logged once, not 30 times (pino flushes async).
    await vi.waitFor(() => expect(lines.length).toBeGreaterThan(0), { timeout: 1000 });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, msg: expect.stringMatching(/draining flow events failed/), drainErrors: 1 });
  });

  it('a query during a failure answers with what it has instead of throwing', () => {
    const flows = new FlowLog(flakyReader(1), names);
    expect(flows.query({})).toEqual([]);
    expect(flows.stats.drainErrors).toBe(1);
    expect(flows.query({})).toHaveLength(1);
  });
});
