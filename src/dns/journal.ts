// Learned names survive agent restarts: a snapshot plus an append-only
// journal under <state-dir>/fqdn/. Every trusted answer is appended (one
// write) before it is released to the pod, so a SIGKILL loses nothing the
// datapath was told. Expiries are stored as wall-clock time.
//
// Compaction runs in slices beside the DNS proxy (compactSteps): the journal
// is first renamed journal.old.jsonl and a new one started, then the snapshot
// is written from the live cache a few hundred names at a time, renamed into
// place, and journal.old removed. Restore replays snapshot, journal.old (if
// a compaction was cut short) and journal, in that order; replay is
// idempotent, so whatever is in two of them only replays twice.
import { appendFileSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalName, runSteps } from '../policy/index.js';
import type { FqdnCache } from './cache.js';
import { monoFromWall, monoNowMs, wallFromMono } from './clock.js';

interface Snapshot {
  version: 1;
  /** In least-recently-answered-first order (cache.ts, ORDER). */
  names: Array<[string, Array<[string, number]>]>;
}

/** One journal line: names of a chain, [ip, wall-clock expiry] pairs. */
type Line = [readonly string[], Array<[string, number]>];

/**
 * The clock reading expiries are written with (lines and snapshots): its
 * offset between the two clocks is kept while a fresh reading agrees with it
 * within CLOCK_STEP_MS, so one expiry is always written as one wall time. A
 * fresh reading each time jittered by a millisecond (Date.now() counts whole
 * ones), and a replay of a snapshot and a journal line of the same answer
 * then read it as shortened, which moved its name (ORDER). A wall clock
 * stepped by more than that is followed at once.
 */
const WRITE_CLOCK = { mono: 0, wall: 0 };
const CLOCK_STEP_MS = 20;

function writeClock(): { mono: number; wall: number } {
  const mono = monoNowMs();
  const wall = Date.now();
  if (WRITE_CLOCK.wall === 0 || Math.abs(wall - mono - (WRITE_CLOCK.wall - WRITE_CLOCK.mono)) > CLOCK_STEP_MS) {
    WRITE_CLOCK.mono = mono;
    WRITE_CLOCK.wall = wall;
  }
  return WRITE_CLOCK;
}

/**
 * Names are stored as learned: normalized presentation format (`\.` for a
 * dot inside a label), so a restored name keeps its labels. A stored name that
 * is not in that form (a hand edit, a bug) could stand for other labels than
 * it was learned with: it is left out, never reinterpreted.
 */
function restorable(names: readonly string[]): string[] {
  return names.filter((n) => typeof n === 'string' && canonicalName(n) === n && n !== '');
}

/** Compaction when the journal has this many lines and twice as many as the cache has addresses. */
const COMPACT_LINES = 20_000;

/** What appendSoon keeps buffered across failing writes, at most. */
const MAX_BUFFERED_CHARS = 1 << 20;

export class FqdnJournal {
  readonly #dir: string;
  readonly #snapshot: string;
  readonly #journal: string;
  /** The journal a compaction under way (or cut short) rotated away. */
  readonly #oldJournal: string;
  #fd = -1;
  /** A compaction is under way (compactSteps). */
  #compacting = false;
  #closed = false;
  #lines = 0;
  #corrupt: string[] = [];

  /**
   * Damaged files are kept as <file>.corrupt (evidence, and the mark that
   * what the pinned map holds may be more than the cache can explain: the
   * agent then keeps unexplained allows until their own expiry) until
   * clearQuarantine().
   */
  get quarantineFiles(): string[] {
    return [`${this.#snapshot}.corrupt`, `${this.#journal}.corrupt`, `${this.#oldJournal}.corrupt`];
  }

  /**
   * What the last restore found damaged (a torn last journal line after a
   * crash is not damage), and which quarantined files exist (from this or
   * an earlier start).
   */
  damage(): { corrupt: string[]; quarantined: string[] } {
    return { corrupt: this.#corrupt, quarantined: this.quarantineFiles.filter((f) => existsSync(f)) };
  }

  clearQuarantine(): void {
    for (const f of this.quarantineFiles) rmSync(f, { force: true });
  }

  constructor(stateDir: string) {
    this.#dir = join(stateDir, 'fqdn');
    this.#snapshot = join(this.#dir, 'snapshot.json');
    this.#journal = join(this.#dir, 'journal.jsonl');
    this.#oldJournal = join(this.#dir, 'journal.old.jsonl');
  }

  /**
   * Loads snapshot and journal into `cache`, leaving out what has expired
   * since (replayed, it would count against the per-name cap and evict live
   * addresses); returns how many names it holds and how many records were
   * skipped. What was damaged is in damage() afterwards.
   */
  restore(cache: FqdnCache): { names: number; skipped: number } {
    mkdirSync(this.#dir, { recursive: true });
    const clock = { mono: monoNowMs(), wall: Date.now() };
    const live = (ips: Array<[string, number]>) => ips.filter(([, wall]) => wall > clock.wall).map(([ip, wall]) => ({ ip, expiresMs: monoFromWall(wall, clock) }));
    let skipped = 0;
    const corrupt: string[] = [];
    if (existsSync(this.#snapshot)) {
      try {
        const snap = JSON.parse(readFileSync(this.#snapshot, 'utf8')) as Snapshot;
        for (const [name, ips] of snap.names) {
          if (restorable([name]).length) cache.learnAbsolute([name], live(ips), clock.mono);
          else skipped++;
        }
      } catch (err) {
        skipped++;
        corrupt.push(`${this.#snapshot}: ${(err as Error).message}`);
      }
      if (corrupt.length) renameSync(this.#snapshot, `${this.#snapshot}.corrupt`);
    }
    /** Replays one journal file; true if its last line is torn (a crash mid-write). */
    const replay = (file: string): boolean => {
      if (!existsSync(file)) return false;
      const text = readFileSync(file, 'utf8');
      const tornTail = text.length > 0 && !text.endsWith('\n');
      let badLines = 0;
      for (const line of text.split('\n')) {
        if (!line) continue;
        try {
          const [names, ips] = JSON.parse(line) as Line;
          const kept = restorable(names);
          if (kept.length < names.length) skipped++;
          cache.learnAbsolute(kept, live(ips), clock.mono);
          this.#lines++;
        } catch {
          skipped++; // a torn last line after a crash is expected, anything else is damage
          if (!(tornTail && line === text.slice(text.lastIndexOf('\n') + 1))) badLines++;
        }
      }
      if (badLines) {
        corrupt.push(`${file}: ${badLines} unreadable lines`);
        copyFileSync(file, `${file}.corrupt`);
      }
      return tornTail;
    };
    const cutShort = existsSync(this.#oldJournal);
    replay(this.#oldJournal);
    const tornTail = replay(this.#journal);
    this.#fd = openSync(this.#journal, 'a');
    // Appending onto a torn line would make the next record unreadable too.
    if (tornTail) writeSync(this.#fd, '\n');
    this.#corrupt = corrupt;
    // A compaction cut short (a stop, a crash): finished now, before anything rotates the journal again.
    if (cutShort) this.maybeCompact(cache, true);
    return { names: cache.size.names, skipped };
  }

  append(names: readonly string[], addresses: ReadonlyArray<{ ip: string; expiresMs: number }>): void {
    this.flush();
    writeSync(this.#fd, this.#line(names, addresses));
    this.#lines++;
  }

  /**
   * As append, written a moment later: at the end of the current callback
   * (process.nextTick), with every other line appended until then, in one
   * write. The DNS proxy's batch of answers then costs one write, and it is
   * still written before the batch's answers leave (the batched sockets send
   * when the callback has returned: native/udpbatch.cc). A write that failed
   * there is thrown here, by the next call (as append would have thrown it,
   * the answer then gets SERVFAIL); its lines are kept for the next write.
   */
  appendSoon(names: readonly string[], addresses: ReadonlyArray<{ ip: string; expiresMs: number }>): void {
    const failed = this.#failed;
    if (failed) {
      this.#failed = undefined;
      throw failed;
    }
    if (!this.#buffered) process.nextTick(this.#flushSoon);
    this.#buffered += this.#line(names, addresses);
    this.#lines++;
  }

  /** Writes what appendSoon buffered now (throws what the write throws; the lines stay buffered). */
  flush(): void {
    if (!this.#buffered || this.#fd < 0) return;
    const text = this.#buffered;
    try {
      writeSync(this.#fd, text);
      this.#buffered = '';
    } catch (err) {
      // Kept for the next write, up to a bound (the snapshot is rewritten from the cache anyway).
      if (text.length > MAX_BUFFERED_CHARS) this.#buffered = '';
      throw err;
    }
  }

  #buffered = '';
  /** The error of the last deferred write, for the next appendSoon to throw. */
  #failed: unknown;
  readonly #flushSoon = (): void => {
    try {
      this.flush();
    } catch (err) {
      this.#failed = err;
    }
  };

  /** One answer's line (appendSoon writes one per learned answer: no copies, no closure). */
  #line(names: readonly string[], addresses: ReadonlyArray<{ ip: string; expiresMs: number }>): string {
    const clock = writeClock();
    const pairs: Line[1] = new Array(addresses.length);
    for (let i = 0; i < addresses.length; i++) pairs[i] = [addresses[i]!.ip, wallFromMono(addresses[i]!.expiresMs, clock)];
    const line: Line = [names, pairs];
    return `${JSON.stringify(line)}\n`;
  }

  /** Whether the journal has grown enough to be compacted (and no compaction is under way). */
  wantsCompaction(cache: FqdnCache): boolean {
    return !this.#compacting && this.#fd >= 0 && this.#lines >= COMPACT_LINES && this.#lines >= 2 * cache.size.ips;
  }

  /** Compacts now, all at once, when it has grown (or `force`): start-up and tests. */
  maybeCompact(cache: FqdnCache, force = false): boolean {
    if (!force && !this.wantsCompaction(cache)) return false;
    return runSteps(this.compactSteps(cache));
  }

  /**
   * A compaction as steps of a few hundred names each (run with runSliced,
   * src/agent/policy-engine.ts): the journal rotates first, so every answer
   * learned meanwhile lands in the new journal, replayed after the
   * snapshot. A close() in the middle cuts it short (the next restore
   * finishes it). Returns whether it completed.
   */
  *compactSteps(cache: FqdnCache): Generator<void, boolean, void> {
    if (this.#compacting || this.#fd < 0) return false;
    this.#compacting = true;
    const tmp = `${this.#snapshot}.tmp`;
    let out = -1;
    try {
      this.flush(); // nothing buffered may land in the new journal before what it follows
      closeSync(this.#fd);
      this.#fd = -1;
      if (existsSync(this.#oldJournal)) {
        // One cut short before (an error part-way): its lines are in no snapshot yet, so they stay, followed by the journal's.
        appendFileSync(this.#oldJournal, readFileSync(this.#journal));
        rmSync(this.#journal);
      } else {
        renameSync(this.#journal, this.#oldJournal);
      }
      this.#fd = openSync(this.#journal, 'a');
      this.#lines = 0;
      out = openSync(tmp, 'w');
      const clock = { ...writeClock() }; // a copy: lines appended between the slices may move the shared one
      writeSync(out, '{"version":1,"names":[');
      let n = 0;
      let chunk = '';
      for (const e of cache.eachEntry()) {
        const item: Snapshot['names'][number] = [e.name, e.ips.map((i) => [i.ip, wallFromMono(i.expiresMs, clock)] as [string, number])];
        chunk += `${n++ ? ',' : ''}${JSON.stringify(item)}`;
        if (n % 256 === 0) {
          writeSync(out, chunk);
          chunk = '';
          yield;
          if (this.#closed) return false; // stopped meanwhile: journal.old stays for the next restore
        }
      }
      writeSync(out, `${chunk}]}`);
      closeSync(out);
      out = -1;
      renameSync(tmp, this.#snapshot);
      rmSync(this.#oldJournal, { force: true });
      return true;
    } finally {
      if (out >= 0) {
        closeSync(out);
        rmSync(tmp, { force: true });
      }
      this.#compacting = false;
      // An error part-way must not leave the journal closed: answers go on being appended.
      if (this.#fd < 0 && !this.#closed) this.#fd = openSync(this.#journal, 'a');
    }
  }

  close(): void {
    try {
      this.flush();
    } catch {
      // a failing disk at shutdown: the lines are lost, as a crash would lose them
    }
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
    this.#closed = true;
  }
}
