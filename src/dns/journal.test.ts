import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FqdnCache, type CacheOptions } from './cache.js';
import { monoNowMs } from './clock.js';
import { FqdnJournal } from './journal.js';

// Expiries go to disk as wall-clock time and come back as monotonic time; the
// two clock readings around that conversion may differ by a few ms.
const CLOCK_SLACK_MS = 50;
const HOUR_MS = 3_600_000;

let stateDir: string;
const open: FqdnJournal[] = [];

beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), 'sluice-journal-'));
});

afterEach(() => {
  for (const j of open.splice(0)) j.close();
  rmSync(stateDir, { recursive: true, force: true });
});

const newCache = (opts: Partial<CacheOptions> = {}) => new FqdnCache({ minTtlMs: 0, graceMs: 0, maxIpsPerName: 8, maxNames: 1000, ...opts });

/** An agent (re)starting: a new journal and a new cache, restored from disk. */
function start(opts: Partial<CacheOptions> = {}) {
  const journal = new FqdnJournal(stateDir);
  open.push(journal);
  const cache = newCache(opts);
  const restored = journal.restore(cache);
  /** What the agent does for a trusted answer: journal first, then the cache. */
  const learn = (names: string[], addresses: Array<{ ip: string; expiresMs: number }>) => {
    journal.append(names, addresses);
    cache.learnAbsolute(names, addresses);
  };
  return { journal, cache, restored, learn };
}

function restart(prev: { journal: FqdnJournal }, opts: Partial<CacheOptions> = {}) {
  prev.journal.close();
  return start(opts);
}

const journalFile = () => join(stateDir, 'fqdn', 'journal.jsonl');
const snapshotFile = () => join(stateDir, 'fqdn', 'snapshot.json');

/** Cache content with expiries rounded to CLOCK_SLACK_MS-sized buckets is too fragile; compare shape and expiries separately. */
function expectSameContent(actual: FqdnCache, expected: FqdnCache): void {
  const a = actual.entries();
  const e = expected.entries();
  expect(a.map((x) => [x.name, x.ips.map((i) => i.ip)])).toEqual(e.map((x) => [x.name, x.ips.map((i) => i.ip)]));
  a.forEach((entry, n) => entry.ips.forEach((ip, m) => expect(Math.abs(ip.expiresMs - e[n]!.ips[m]!.expiresMs)).toBeLessThan(CLOCK_SLACK_MS)));
}

describe('FqdnJournal', () => {
  it('starts empty and creates its directory', () => {
    const { restored, cache } = start();
    expect(restored).toEqual({ names: 0, skipped: 0 });
    expect(cache.size).toEqual({ names: 0, ips: 0 });
    expect(existsSync(join(stateDir, 'fqdn'))).toBe(true);
  });

  it('restores what was learned after a restart, chains and expiries included', () => {
    const now = monoNowMs();
    const first = start();
    first.learn(['api.github.com.ns.svc.cluster.local', 'api.github.com'], [{ ip: '140.82.112.5', expiresMs: now + HOUR_MS }]);
    first.learn(['example.com'], [{ ip: '192.0.2.1', expiresMs: now + 60_000 }, { ip: '2001:db8::1', expiresMs: now + 120_000 }]);
    first.learn(['api.github.com'], [{ ip: '140.82.112.6', expiresMs: now + 30_000 }]);

    const second = restart(first);
    expect(second.restored).toEqual({ names: 3, skipped: 0 });
    expectSameContent(second.cache, first.cache);
  });

  it('writes one JSON line per answer that a person can read', () => {
    const now = monoNowMs();
    const { learn } = start();
    learn(['example.com'], [{ ip: '192.0.2.1', expiresMs: now + 60_000 }]);
    learn(['example.org'], [{ ip: '192.0.2.2', expiresMs: now + 60_000 }]);
    const lines = readFileSync(journalFile(), 'utf8').split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe('');
    const [names, ips] = JSON.parse(lines[0]!) as [string[], Array<[string, number]>];
    expect(names).toEqual(['example.com']);
    expect(ips[0]![0]).toBe('192.0.2.1');
    expect(Math.abs(ips[0]![1] - (Date.now() + 60_000))).toBeLessThan(CLOCK_SLACK_MS); // wall clock
  });

  it('appendSoon buffers lines and writes them together at the end of the callback; close and compaction write them first', async () => {
    const now = monoNowMs();
    const { journal, cache } = start();
    journal.appendSoon(['a.example'], [{ ip: '192.0.2.1', expiresMs: now + 60_000 }]);
    journal.appendSoon(['b.example'], [{ ip: '192.0.2.2', expiresMs: now + 60_000 }]);
    expect(existsSync(journalFile()) ? readFileSync(journalFile(), 'utf8') : '').toBe(''); // not yet
    await new Promise<void>((r) => process.nextTick(r));
    expect(readFileSync(journalFile(), 'utf8').split('\n').map((l) => (l ? (JSON.parse(l) as [string[]])[0][0] : l))).toEqual(['a.example', 'b.example', '']);
    journal.appendSoon(['c.example'], [{ ip: '192.0.2.3', expiresMs: now + 60_000 }]);
    cache.learnAbsolute(['a.example'], [{ ip: '192.0.2.1', expiresMs: now + 60_000 }]);
    journal.maybeCompact(cache, true); // flushes c first, then empties the journal
    expect(readFileSync(journalFile(), 'utf8')).toBe('');
    journal.appendSoon(['d.example'], [{ ip: '192.0.2.4', expiresMs: now + 60_000 }]);
    journal.close();
    expect(readFileSync(journalFile(), 'utf8')).toContain('d.example');
  });

  it('tolerates a torn last line, and what is appended after it survives the next restart', () => {
    const now = monoNowMs();
    const first = start();
    first.learn(['a.example'], [{ ip: '192.0.2.1', expiresMs: now + HOUR_MS }]);
    first.journal.close();
    appendFileSync(journalFile(), '[["b.example"],[["192.0.2.2",17'); // SIGKILL mid-write

    const second = start();
    expect(second.restored).toEqual({ names: 1, skipped: 1 });
    expect(second.cache.entries().map((e) => e.name)).toEqual(['a.example']);
    second.learn(['c.example'], [{ ip: '192.0.2.3', expiresMs: now + HOUR_MS }]);

    const third = restart(second);
    expect(third.cache.entries().map((e) => e.name)).toEqual(['a.example', 'c.example']);
    expect(third.restored.names).toBe(2);
  });

  it('skips records that expired while the agent was down', () => {
    const now = monoNowMs();
    const first = start();
    first.learn(['gone.example'], [{ ip: '192.0.2.1', expiresMs: now - 1_000 }]);
    first.learn(['mixed.example'], [{ ip: '192.0.2.2', expiresMs: now - 1_000 }, { ip: '192.0.2.3', expiresMs: now + HOUR_MS }]);

    const second = restart(first);
    expect(second.cache.entries().map((e) => [e.name, e.ips.map((i) => i.ip)])).toEqual([['mixed.example', ['192.0.2.3']]]);
    expect(second.cache.namesOf('192.0.2.1')).toEqual([]);
  });

  it('does not let long-expired records evict live ones on replay (per-name cap)', () => {
    // Before the restart: a (long TTL), b (short; expired and swept long ago), then c → {a, c}.
    // Replaying b would make it evict a when c comes in, leaving {b (expired), c}.
    const now = monoNowMs();
    const first = start({ maxIpsPerName: 2 });
    first.learn(['example.com'], [{ ip: '192.0.2.1', expiresMs: now + HOUR_MS }]);
    first.learn(['example.com'], [{ ip: '192.0.2.2', expiresMs: now - 10 * 60_000 }]);
    first.cache.sweep(now, 60_000);
    first.learn(['example.com'], [{ ip: '192.0.2.3', expiresMs: now + HOUR_MS }]);
    expect(first.cache.entries()[0]!.ips.map((i) => i.ip)).toEqual(['192.0.2.1', '192.0.2.3']);

    const second = restart(first, { maxIpsPerName: 2 });
    expectSameContent(second.cache, first.cache);
  });

  it('compacts into a snapshot, empties the journal and restores the same content, order included', () => {
    const now = monoNowMs();
    const first = start();
    first.learn(['a.example'], [{ ip: '192.0.2.1', expiresMs: now + HOUR_MS }]);
    first.learn(['b.example', 'cdn.example'], [{ ip: '192.0.2.2', expiresMs: now + HOUR_MS }, { ip: '192.0.2.3', expiresMs: now + 2 * HOUR_MS }]);
    first.learn(['a.example'], [{ ip: '192.0.2.4', expiresMs: now + HOUR_MS }]);

    expect(first.journal.maybeCompact(first.cache)).toBe(false); // not grown enough
    expect(first.journal.maybeCompact(first.cache, true)).toBe(true);
    expect(statSync(journalFile()).size).toBe(0);
    expect(JSON.parse(readFileSync(snapshotFile(), 'utf8'))).toMatchObject({ version: 1 });

    first.learn(['d.example'], [{ ip: '192.0.2.5', expiresMs: now + HOUR_MS }]); // after compaction: journal again
    const second = restart(first);
    expect(second.restored).toEqual({ names: 4, skipped: 0 });
    expectSameContent(second.cache, first.cache);
    expect(second.cache.entries().map((e) => e.name)).toEqual(['b.example', 'cdn.example', 'a.example', 'd.example']);
  });

  it('compacts in steps while answers go on being learned: every one of them survives a restart', () => {
    const now = monoNowMs();
    const first = start();
    for (let i = 0; i < 1000; i++) first.learn([`n${i}.example`], [{ ip: `198.51.${i >> 8}.${i & 255}`, expiresMs: now + HOUR_MS }]);
    const steps = first.journal.compactSteps(first.cache);
    let stepped = 0;
    for (let r = steps.next(); !r.done; r = steps.next()) {
      // Between two steps: new names and new addresses of names already written to the snapshot.
      first.learn([`late${stepped}.example`], [{ ip: `203.0.113.${stepped}`, expiresMs: now + HOUR_MS }]);
      first.learn(['n0.example'], [{ ip: `192.0.2.${stepped}`, expiresMs: now + HOUR_MS }]);
      stepped++;
    }
    expect(stepped).toBeGreaterThan(1); // it did yield
    expect(existsSync(join(stateDir, 'fqdn', 'journal.old.jsonl'))).toBe(false);
    const second = restart(first);
    expect(second.restored.skipped).toBe(0);
    expect(new Set(second.cache.entries().map((e) => e.name))).toEqual(new Set(first.cache.entries().map((e) => e.name)));
    expect(second.cache.entries().find((e) => e.name === 'n0.example')!.ips.map((i) => i.ip).sort()).toEqual(first.cache.entries().find((e) => e.name === 'n0.example')!.ips.map((i) => i.ip).sort());
  });

  it('a compaction cut short by a stop loses nothing: the next start replays the rotated journal and finishes it', () => {
    const now = monoNowMs();
    const first = start();
    for (let i = 0; i < 600; i++) first.learn([`n${i}.example`], [{ ip: `198.51.${i >> 8}.${i & 255}`, expiresMs: now + HOUR_MS }]);
    const steps = first.journal.compactSteps(first.cache);
    steps.next(); // rotated, a first slice written
    first.learn(['late.example'], [{ ip: '203.0.113.1', expiresMs: now + HOUR_MS }]);
    first.journal.close(); // the agent stops mid-compaction
    expect(steps.next().done).toBe(true);
    expect(existsSync(join(stateDir, 'fqdn', 'journal.old.jsonl'))).toBe(true);
    expect(existsSync(`${snapshotFile()}.tmp`)).toBe(false);
    const second = start();
    expect(second.restored).toEqual({ names: 601, skipped: 0 });
    expectSameContent(second.cache, first.cache);
    expect(existsSync(join(stateDir, 'fqdn', 'journal.old.jsonl'))).toBe(false); // finished at start
    expectSameContent(restart(second).cache, first.cache);
  });

  it('a rotated journal left by a failed compaction keeps its lines when the next one rotates', () => {
    const now = monoNowMs();
    const first = start();
    for (let i = 0; i < 300; i++) first.learn([`n${i}.example`], [{ ip: `198.51.${i >> 8}.${i & 255}`, expiresMs: now + HOUR_MS }]);
    // As a compaction that failed after its rotation leaves it (those lines are in no snapshot yet).
    writeFileSync(join(stateDir, 'fqdn', 'journal.old.jsonl'), `${JSON.stringify([['left.example'], [['192.0.2.9', Date.now() + HOUR_MS]]])}\n`);
    const steps = first.journal.compactSteps(first.cache);
    steps.next();
    first.journal.close(); // cut short again, right after rotating
    steps.next();
    const second = start();
    expect(second.cache.size.names).toBe(301);
    expect(second.cache.entries().map((e) => e.name)).toContain('left.example');
  });

  it('replays twice harmlessly (crash between snapshot and journal truncation), whatever millisecond Date.now() reads', () => {
    // Date.now() counts whole milliseconds, and a reading can be held up: a line and the snapshot
    // written a moment apart read the two clocks a little apart (here 5 ms). One expiry must still be
    // written as one wall time, or the replayed line reads as a shorter expiry and moves its name
    // (with the natural millisecond of jitter this failed ~1 run in 10).
    const realNow = Date.now.bind(Date);
    let skew = -5;
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + skew);
    try {
      const now = monoNowMs();
      const first = start();
      first.learn(['a.example'], [{ ip: '192.0.2.1', expiresMs: now + HOUR_MS }]);
      skew = 0;
      first.learn(['b.example'], [{ ip: '192.0.2.2', expiresMs: now + HOUR_MS }]);
      const journalBefore = readFileSync(journalFile());
      first.journal.maybeCompact(first.cache, true);
      first.journal.close();
      writeFileSync(journalFile(), journalBefore); // the truncation never happened

      const second = start();
      expect(second.restored).toEqual({ names: 2, skipped: 0 });
      expectSameContent(second.cache, first.cache);
    } finally {
      clock.mockRestore();
    }
  });

  it('follows a wall clock stepped while it runs (a new offset for what it writes from then on)', () => {
    const realNow = Date.now.bind(Date);
    let step = 0;
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + step);
    try {
      const now = monoNowMs();
      const first = start();
      first.learn(['a.example'], [{ ip: '192.0.2.1', expiresMs: now + HOUR_MS }]);
      step = 60_000; // NTP stepped the clock a minute ahead: the wall time written moves with it
      first.learn(['b.example'], [{ ip: '192.0.2.2', expiresMs: now + HOUR_MS }]);
      const walls = readFileSync(journalFile(), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as [string[], Array<[string, number]>])[1][0]![1]);
      expect(walls[1]! - walls[0]!).toBeGreaterThanOrEqual(60_000 - 2);
      expect(walls[1]! - walls[0]!).toBeLessThanOrEqual(60_000 + 2);
    } finally {
      clock.mockRestore();
    }
  });

  it('skips an unreadable snapshot and still replays the journal', () => {
    const now = monoNowMs();
    mkdirSync(join(stateDir, 'fqdn'), { recursive: true });
    writeFileSync(snapshotFile(), '{"version":1,"names":[["a.example",[["192.0.2.1",');
    const first = start();
    expect(first.restored).toEqual({ names: 0, skipped: 1 });
    // Quarantined, not lost: kept as snapshot.json.corrupt and reported.
    expect(first.journal.damage()).toEqual({ corrupt: [expect.stringContaining('snapshot.json')], quarantined: [`${snapshotFile()}.corrupt`] });
    expect(existsSync(snapshotFile())).toBe(false);
    first.learn(['b.example'], [{ ip: '192.0.2.2', expiresMs: now + HOUR_MS }]);
    const second = restart(first);
    expect(second.restored).toEqual({ names: 1, skipped: 0 });
    // Still damaged from the earlier start until the quarantine is cleared.
    expect(second.journal.damage()).toEqual({ corrupt: [], quarantined: [`${snapshotFile()}.corrupt`] });
    second.journal.clearQuarantine();
    expect(second.journal.damage().quarantined).toEqual([]);
  });

  it('reports unreadable journal lines as damage (a torn last line is not) and keeps a copy', () => {
    const now = monoNowMs();
    const first = start();
    first.learn(['a.example'], [{ ip: '192.0.2.1', expiresMs: now + HOUR_MS }]);
    first.journal.close();
    appendFileSync(journalFile(), '{garbage\n["c.example",[["192.0.2.3"');
    const second = start();
    expect(second.restored).toEqual({ names: 1, skipped: 2 });
    expect(second.journal.damage()).toEqual({ corrupt: [expect.stringMatching(/journal\.jsonl: 1 unreadable lines/)], quarantined: [`${journalFile()}.corrupt`] });
    // Only a torn tail (a crash mid-write): nothing to report.
    second.journal.clearQuarantine();
    second.journal.close();
    writeFileSync(journalFile(), `${readFileSync(journalFile(), 'utf8').split('\n')[0]}\n["d.example",[["192.0.2.4"`);
    const third = start();
    expect(third.restored).toEqual({ names: 1, skipped: 1 });
    expect(third.journal.damage()).toEqual({ corrupt: [], quarantined: [] });
  });
});
