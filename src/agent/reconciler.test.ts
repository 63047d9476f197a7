import { describe, expect, it } from 'vitest';
import { Reconciler, ReconcilerStoppedError, type SyncOutcome } from './reconciler.js';

/** A defer the test drives: nothing runs until flush(). */
function manualDefer() {
  const queue: Array<() => void> = [];
  return {
    defer: (fn: () => void) => void queue.push(fn),
    get pending() {
      return queue.length;
    },
    async flush() {
      while (queue.length) {
        queue.shift()!();
        // Let the sync's await and the waiters' resolutions run.
        for (let i = 0; i < 5; i++) await Promise.resolve();
      }
    },
  };
}

/** A fake engine: records what state each sync saw; fails endpoints on demand. */
class FakeEngine {
  state = 0;
  seen: number[] = [];
  failNext: SyncOutcome['failed'] = [];
  throwNext: Error | undefined;
  sync(): SyncOutcome {
    this.seen.push(this.state);
    if (this.throwNext) {
      const err = this.throwNext;
      this.throwNext = undefined;
      throw err;
    }
    const failed = this.failNext;
    this.failNext = [];
    return { failed };
  }
}

describe('Reconciler', () => {
  it('a burst of changes costs one sync, which sees all of them', async () => {
    const engine = new FakeEngine();
    const d = manualDefer();
    const r = new Reconciler(engine, d.defer);
    for (let i = 1; i <= 50; i++) {
      engine.state = i;
      r.markDirty();
    }
    expect(d.pending).toBe(1);
    await d.flush();
    expect(r.syncs).toBe(1);
    expect(engine.seen).toEqual([50]);
  });

  it('nothing dirty, no sync', async () => {
    const engine = new FakeEngine();
    const d = manualDefer();
    const r = new Reconciler(engine, d.defer);
    await d.flush();
    expect(r.syncs).toBe(0);
    expect(engine.seen).toEqual([]);
  });

  it('concurrent requests (parallel ADDs) share one sync and each gets its report', async () => {
    const engine = new FakeEngine();
    const d = manualDefer();
    const r = new Reconciler(engine, d.defer);
    engine.state = 1;
    const a = r.request();
    engine.state = 2;
    const b = r.request();
    engine.failNext = [{ key: 'b.eth0', error: 'E2BIG map full', code: 'SLUICE_MAP_FULL' }];
    await d.flush();
    expect(await a).toEqual({ failed: [{ key: 'b.eth0', error: 'E2BIG map full', code: 'SLUICE_MAP_FULL' }] });
    expect(await b).toBe(await a);
    expect(engine.seen).toEqual([2]);
  });

  it('a request resolves with the first sync that starts after it, not an earlier one, and no later one', async () => {
    const engine = new FakeEngine();
    const d = manualDefer();
    const r = new Reconciler(engine, d.defer);
    engine.state = 1;
    r.markDirty();
    await d.flush(); // sync #1 sees state 1
    engine.state = 2;
    let resolved = false;
    const p = r.request().then((rep) => {
      resolved = true;
      return rep;
    });
    await Promise.resolve();
    expect(resolved).toBe(false); // sync #1 does not count for it
    engine.failNext = [{ key: 'x', error: 'boom', code: 'SLUICE_DATAPATH' }];
    await d.flush(); // sync #2 includes state 2
    expect(resolved).toBe(true);
    expect((await p).failed).toHaveLength(1);
    engine.state = 3;
    r.markDirty();
    await d.flush();
    expect(engine.seen).toEqual([1, 2, 3]);
  });

  it('a change during a sync gets a sync of its own after it (one at a time)', async () => {
    const d = manualDefer();
    let release!: () => void;
    let calls = 0;
    let concurrent = 0;
    let maxConcurrent = 0;
    const engine = {
      async sync(): Promise<SyncOutcome> {
        calls++;
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        if (calls === 1) await new Promise<void>((res) => (release = res));
        concurrent--;
        return { failed: [] };
      },
    };
    const r = new Reconciler(engine, d.defer);
    const first = r.request();
    d.flush(); // starts sync #1, which blocks
    await Promise.resolve();
    const second = r.request(); // dirty while #1 runs: not folded into it
    expect(d.pending).toBe(0); // no second sync scheduled while one runs
    release();
    await first;
    await d.flush();
    await second;
    expect(calls).toBe(2);
    expect(maxConcurrent).toBe(1);
  });

  it('a sync that throws rejects its waiters; the next change syncs again', async () => {
    const engine = new FakeEngine();
    const d = manualDefer();
    const r = new Reconciler(engine, d.defer);
    engine.throwNext = new Error('compile bug');
    const p = r.request();
    await d.flush();
    await expect(p).rejects.toThrow('compile bug');
    const q = r.request();
    await d.flush();
    await expect(q).resolves.toEqual({ failed: [] });
  });

  it('stop: waiters are told their change was not programmed; no sync runs after', async () => {
    const engine = new FakeEngine();
    const d = manualDefer();
    const r = new Reconciler(engine, d.defer);
    const p = r.request();
    r.stop();
    await expect(p).rejects.toBeInstanceOf(ReconcilerStoppedError);
    await d.flush();
    expect(engine.seen).toEqual([]);
    await expect(r.request()).rejects.toMatchObject({ code: 'SLUICE_STOPPING' });
  });

  it('by default a sync runs on the next turn of the event loop', async () => {
    const engine = new FakeEngine();
    const r = new Reconciler(engine);
    engine.state = 7;
    const rep = await r.request();
    expect(rep).toEqual({ failed: [] });
    expect(engine.seen).toEqual([7]);
  });
});
