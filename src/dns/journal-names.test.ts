// The journal keeps names as they were learned, label by label: presentation
// format (`dot\.example.test` is the labels "dot.example" and "test"), and a
// stored name in any other form is left out on restore rather than read as
// labels it was never learned with.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FqdnCache } from './cache.js';
import { monoNowMs } from './clock.js';
import { FqdnJournal } from './journal.js';

const HOUR_MS = 3_600_000;

let stateDir: string;
const open: FqdnJournal[] = [];

beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), 'sluice-journal-names-'));
});

afterEach(() => {
  for (const j of open.splice(0)) j.close();
  rmSync(stateDir, { recursive: true, force: true });
});

function start() {
  const journal = new FqdnJournal(stateDir);
  open.push(journal);
  const cache = new FqdnCache({ minTtlMs: 0, graceMs: 0, maxIpsPerName: 8, maxNames: 1000 });
  const restored = journal.restore(cache);
  return { journal, cache, restored };
}

const names = (c: FqdnCache) => c.entries().map((e) => e.name);

/** A journal written by hand (another version, an operator, a bug), as JSON lines. */
function writeJournal(lines: unknown[]): void {
  mkdirSync(join(stateDir, 'fqdn'), { recursive: true });
  writeFileSync(join(stateDir, 'fqdn', 'journal.jsonl'), lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
}

describe('FqdnJournal names', () => {
  it('restores escaped names with their labels: a label holding a dot stays one label', () => {
    const first = start();
    const expiresMs = monoNowMs() + HOUR_MS;
    const learned = ['dot\\.example.test', 'dot.example.test', 'sp\\032ace\\\\\\200.example.test', 'a\\.'];
    for (const [i, n] of learned.entries()) first.journal.append([n], [{ ip: `192.0.2.${i + 1}`, expiresMs }]);
    first.journal.close();

    const again = start();
    expect(again.restored.skipped).toBe(0);
    expect(names(again.cache)).toEqual(learned);
    expect(again.cache.namesOf('192.0.2.1').map((n) => n.name)).toEqual(['dot\\.example.test']);
    expect(again.cache.namesOf('192.0.2.2').map((n) => n.name)).toEqual(['dot.example.test']);

    // Through a snapshot too.
    again.journal.maybeCompact(again.cache, true);
    again.journal.close();
    const third = start();
    expect(names(third.cache)).toEqual(learned);
  });

  it('leaves out a stored name that is not in the form names are learned in, keeping the rest of its line', () => {
    const wall = Date.now() + HOUR_MS;
    writeJournal([
      [['api.example.test', 'Upper.Example.test'], [['192.0.2.1', wall]]], // not lower case
      [['a b.test'], [['192.0.2.2', wall]]], // a raw space: which labels?
      [['dot\\x.test'], [['192.0.2.3', wall]]], // `\x` is "x": not how it would be written
      [['a..b'], [['192.0.2.4', wall]]], // an empty label
      [['dot\\.example.test'], [['192.0.2.5', wall]]],
    ]);
    const { cache, restored } = start();
    expect(names(cache)).toEqual(['api.example.test', 'dot\\.example.test']);
    expect(cache.namesOf('192.0.2.2')).toEqual([]);
    expect(restored.skipped).toBe(4);
  });

  it('leaves out such a name from the snapshot too', () => {
    const wall = Date.now() + HOUR_MS;
    mkdirSync(join(stateDir, 'fqdn'), { recursive: true });
    writeFileSync(
      join(stateDir, 'fqdn', 'snapshot.json'),
      JSON.stringify({ version: 1, names: [['dot\\.example.test', [['192.0.2.1', wall]]], ['é.test', [['192.0.2.2', wall]]]] }),
    );
    const { cache, restored } = start();
    expect(names(cache)).toEqual(['dot\\.example.test']);
    expect(restored.skipped).toBe(1);
  });
});
