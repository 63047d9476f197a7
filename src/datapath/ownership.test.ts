// The datapath owns every map: no source file outside src/datapath (and the
// addon's own loader, src/native) calls the addon's BPF surface, holds a map
// fd or encodes map bytes with a codec. Tests are exempt: they inspect what
// the kernel (or the fake) holds.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const src = join(import.meta.dirname, '..');

/** The addon's BPF calls, the fd accessors and the codecs' module paths. */
const BPF_SURFACE =
  /\.(objLoad|objPin|objGet|mapInfo|mapLookup|mapUpdate|mapDelete|mapGetNextKey|mapLookupBatch|mapUpdateBatch|mapDeleteBatch|progTestRun|ringbufOpen|ringbufConsume|ringbufEpollFd|ringbufClose|tcAttach|tcDetach|tcQuery|mapFd|progFd)\(|datapath\/codec\//;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

describe('map ownership', () => {
  it('only src/datapath and src/native touch BPF maps, programs or codecs', () => {
    const files = sources(src);
    expect(files.length).toBeGreaterThan(20);
    const offenders: string[] = [];
    for (const file of files) {
      const rel = relative(src, file);
      if (rel.startsWith('datapath/') || rel.startsWith('native/')) continue;
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (BPF_SURFACE.test(line)) offenders.push(`src/${rel}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(offenders).toEqual([]);
  });

  it('the check sees a map call and a codec import when there is one', () => {
    // Guards the pattern itself: a regex that matched nothing would pass above.
    expect(BPF_SURFACE.test('native().mapUpdate(fd, k, v, 0);')).toBe(true);
    expect(BPF_SURFACE.test("import * as fqdnCodec from '../datapath/codec/fqdn.js';")).toBe(true);
    expect(BPF_SURFACE.test('const fd = dp.mapFd(MAP_FQDN);')).toBe(true);
    expect(BPF_SURFACE.test('dp.fqdnAllows.put(rule, ip, expiresNs);')).toBe(false);
  });
});
