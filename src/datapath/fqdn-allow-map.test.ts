// FqdnAllowMap's batched writes against a real hash map of sluice_fqdn_v1's
// shape (made with bpftool, pinned for this file and removed after): what one
// putMany wrote reads back, with the expiry monoMsToNs would have written; a
// map that fills part-way through a batch fails exactly the entries it
// refused and still takes the rest (a refresh of a key it holds included).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scratchHashMap, type ScratchMap } from '../../test/helpers/scratch-map.js';
import { monoMsToNs } from '../dns/clock.js';
import { BPF_ANY, native } from '../native/index.js';
import * as fqdnCodec from './codec/fqdn.js';
import { FqdnAllowMap } from './fqdn-allow-map.js';

const CAPACITY = 4;
const E2BIG = 7;

describe.skipIf(process.getuid?.() !== 0)('FqdnAllowMap on a real map', () => {
  let scratch: ScratchMap | undefined;
  let fd = -1;
  let map: FqdnAllowMap;

  beforeAll(() => {
    scratch = scratchHashMap('fqdn', fqdnCodec.KEY_SIZE, fqdnCodec.SIZE, CAPACITY);
    fd = scratch.fd;
    map = new FqdnAllowMap(native(), fd, 'sluice_fqdn_t');
  });

  afterAll(() => {
    map?.close();
    scratch?.remove();
  });

  it('writes a batch at once: every entry reads back, its expiry in ns exactly as monoMsToNs makes it', () => {
    // 138 days of uptime in ns is past a double's integers; 250 years in µs is not.
    const expiresMs = [1234.5678, 1.2e10 + 0.0015, 7.9e12 + 0.25];
    expect(map.putMany([1, 1, 2], ['192.0.2.1', '2001:db8::1', '192.0.2.1'], expiresMs, 3)).toBeUndefined();
    expect(map.get(1, '192.0.2.1')).toBe(monoMsToNs(expiresMs[0]!));
    expect(map.get(1, '2001:db8::1')).toBe(monoMsToNs(expiresMs[1]!));
    expect(map.get(2, '192.0.2.1')).toBe(monoMsToNs(expiresMs[2]!));
    expect(map.get(2, '2001:db8::1')).toBeUndefined();
    // putMs is the same write, one at a time.
    map.putMs(2, '2001:db8::1', 5.5);
    expect(map.get(2, '2001:db8::1')).toBe(monoMsToNs(5.5));
    expect(map.delete(2, '2001:db8::1')).toBe(true);
  });

  it('a map full part-way fails exactly the entries it refused and writes the others, a refresh included', () => {
    // 3 of 4 held: the first new key fits, the next two do not; the refresh of a held key does.
    const failed = map.putMany([3, 3, 1, 3], ['192.0.2.3', '192.0.2.4', '192.0.2.1', '192.0.2.5'], [10, 11, 12, 13], 4);
    expect([...(failed ?? new Map()).keys()]).toEqual([1, 3]);
    for (const err of failed!.values()) expect(err).toMatchObject({ code: 'SLUICE_MAP_FULL', message: 'sluice_fqdn_t is full', cause: expect.objectContaining({ code: 'E2BIG' }) });
    expect(map.get(3, '192.0.2.3')).toBe(monoMsToNs(10));
    expect(map.get(3, '192.0.2.4')).toBeUndefined();
    expect(map.get(1, '192.0.2.1')).toBe(monoMsToNs(12));
    expect(map.get(3, '192.0.2.5')).toBeUndefined();
    // A batch of one takes the single-update path, with the same answer.
    expect(map.putMany([4], ['192.0.2.6'], [1], 1)?.get(0)).toMatchObject({ code: 'SLUICE_MAP_FULL' });
    expect(() => map.putMs(4, '192.0.2.6', 1)).toThrow(expect.objectContaining({ code: 'SLUICE_MAP_FULL' }));
  });

  it('MapHandle.updateBatch: each entry tried once, its errno reported, the failures counted', () => {
    const handle = new (native().MapHandle)(fd);
    try {
      const keys = Buffer.concat([fqdnCodec.encodeKey(5, '192.0.2.7'), fqdnCodec.encodeKey(3, '192.0.2.3'), fqdnCodec.encodeKey(5, '192.0.2.8'), Buffer.alloc(fqdnCodec.KEY_SIZE)]);
      const values = Buffer.concat([fqdnCodec.encode(1n), fqdnCodec.encode(2n), fqdnCodec.encode(3n), Buffer.alloc(fqdnCodec.SIZE)]);
      const errors = new Int32Array(4).fill(-1);
      // Three of the four (the buffers may be longer than the batch): the map is full, the held key is rewritten.
      expect(handle.updateBatch(keys, values, 3, BPF_ANY, errors)).toBe(2);
      expect([...errors]).toEqual([E2BIG, 0, E2BIG, -1]);
      expect(map.get(3, '192.0.2.3')).toBe(2n);
      expect(() => handle.updateBatch(keys, values, 5, BPF_ANY, errors)).toThrow(RangeError);
      expect(() => handle.updateBatch(keys, values, 1, BPF_ANY, new Uint32Array(1) as unknown as Int32Array)).toThrow(TypeError);
    } finally {
      handle.close();
    }
  });
});
