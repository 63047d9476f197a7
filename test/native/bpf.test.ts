// BPF through the addon against the real kernel: load the fixture object with
// a pin root on bpffs, exercise every map operation (including the batch
// fallbacks for an LPM trie), reuse of pinned maps, test runs feeding the
// per-CPU counter and the ring buffer, and tc attach/query/detach on a veth
// inside a test netns.
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { BPF_ANY, BPF_EXIST, BPF_NOEXIST, NativeError, native } from '../../src/native/index.js';
import type { NativeAddon, ObjLoadResult } from '../../src/native/index.js';
import { Cleanup, isRoot, sh, uniqueName } from '../helpers/netns.js';

const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const ADDON = process.env['SLUICE_NATIVE_ADDON'] ?? resolve(FIXTURES, '../../../build/Release/sluice_native.node');
const BPFFS = '/sys/fs/bpf';
const BPF_MAP_TYPE_HASH = 1;
const BPF_MAP_TYPE_LPM_TRIE = 11;
const BPF_PROG_TYPE_SCHED_CLS = 3;

function compile(src: string, outDir: string): string {
  const out = join(outDir, src.replace(/\.c$/, '.o'));
  execFileSync('clang', [
    '-target', 'bpf', '-O2', '-g',
    '-I/usr/include/x86_64-linux-gnu',
    '-c', join(FIXTURES, src), '-o', out,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  return out;
}

function ensureBpffs(): void {
  const mounts = sh('mount', []);
  if (!mounts.split('\n').some((l) => l.includes(` ${BPFFS} type bpf`))) {
    sh('mount', ['-t', 'bpf', 'bpf', BPFFS]);
  }
}

const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};
const u64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};
/** struct lpm_v4_key { __u32 prefixlen; __u8 addr[4]; } */
const lpmKey = (cidr: string): Buffer => {
  const [addr = '', len = '0'] = cidr.split('/');
  return Buffer.concat([u32(Number(len)), Buffer.from(addr.split('.').map(Number))]);
};

/** epoll fds and bpf mappings of this process: what a ring buffer holds. */
function ringResources(): { epollFds: number; bpfMappedBytes: number } {
  let epollFds = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).includes('eventpoll')) epollFds += 1;
    } catch {
      // closed while we looked
    }
  }
  // Bytes, not lines: adjacent mappings of the same map may merge into one.
  let bpfMappedBytes = 0;
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) .*bpf/.exec(line);
    if (m?.[1] && m[2]) bpfMappedBytes += parseInt(m[2], 16) - parseInt(m[1], 16);
  }
  return { epollFds, bpfMappedBytes };
}

/** A 64-byte Ethernet/IPv4/UDP frame, 10.244.0.1:1000 -> 10.244.0.2:53. */
function frame(): Buffer {
  const f = Buffer.alloc(64);
  Buffer.from([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]).copy(f, 0);
  f.writeUInt16BE(0x0800, 12);
  f.writeUInt8(0x45, 14); // IPv4, IHL 5
  f.writeUInt16BE(50, 16); // total length
  f.writeUInt8(64, 22); // TTL
  f.writeUInt8(17, 23); // UDP
  Buffer.from([10, 244, 0, 1, 10, 244, 0, 2]).copy(f, 26);
  f.writeUInt16BE(1000, 34);
  f.writeUInt16BE(53, 36);
  f.writeUInt16BE(30, 38);
  return f;
}

describe.skipIf(!isRoot)('native BPF', () => {
  const cleanup = new Cleanup();
  let n: NativeAddon;
  let obj: string;
  let bad: string;
  let pinRoot: string;
  let first: ObjLoadResult;
  const fds: number[] = [];

  const prog = (): number => first.progs['fixture_prog'] ?? -1;
  const map = (name: string): number => first.maps[name] ?? -1;
  const load = (opts: Parameters<NativeAddon['objLoad']>[1]): ObjLoadResult => {
    const r = n.objLoad(obj, opts);
    fds.push(...Object.values(r.progs), ...Object.values(r.maps));
    return r;
  };

  beforeAll(() => {
    n = native();
    ensureBpffs();
    const tmp = mkdtempSync(join(tmpdir(), 'slt-bpf-'));
    cleanup.add(() => rmSync(tmp, { recursive: true, force: true }));
    obj = compile('maps.bpf.c', tmp);
    bad = compile('bad.bpf.c', tmp);
    pinRoot = join(BPFFS, uniqueName('bpf'));
    mkdirSync(pinRoot);
    cleanup.add(() => rmSync(pinRoot, { recursive: true, force: true }));
    // Runs before the pin dir removal (cleanups run in reverse).
    cleanup.add(() => {
      for (const fd of fds.splice(0)) n.close(fd);
    });
  });
  afterAll(() => cleanup.run());

  it('loads the object, pinning by-name maps and applying maxEntries', () => {
    first = load({ pinRoot, maxEntries: { fixture_lpm: 512 } });
    expect(Object.keys(first.progs)).toEqual(['fixture_prog']);
    expect(Object.keys(first.maps).sort()).toEqual(['fixture_counter', 'fixture_events', 'fixture_hash', 'fixture_lpm']);
    expect(n.progInfo(prog())).toMatchObject({ name: 'fixture_prog', type: BPF_PROG_TYPE_SCHED_CLS });
    expect(n.progInfo(prog()).tag).toMatch(/^[0-9a-f]{16}$/);
    expect(n.mapInfo(map('fixture_lpm'))).toMatchObject({ type: BPF_MAP_TYPE_LPM_TRIE, keySize: 8, valueSize: 4, maxEntries: 512, flags: 1 });
    expect(n.mapInfo(map('fixture_hash'))).toMatchObject({ type: BPF_MAP_TYPE_HASH, keySize: 4, valueSize: 8, maxEntries: 128, name: 'fixture_hash' });
    expect(existsSync(join(pinRoot, 'fixture_hash'))).toBe(true);
    // Only the map declared with LIBBPF_PIN_BY_NAME is pinned.
    expect(existsSync(join(pinRoot, 'fixture_lpm'))).toBe(false);
  });

  it('does single-element update/lookup/delete/getNextKey', () => {
    const h = map('fixture_hash');
    n.mapUpdate(h, u32(7), u64(42n), BPF_ANY);
    n.mapUpdate(h, u32(8), u64(43n), BPF_NOEXIST);
    expect(n.mapLookup(h, u32(7), 8)?.readBigUInt64LE()).toBe(42n);
    expect(n.mapLookup(h, u32(9), 8)).toBeUndefined();

    const exists = (() => {
      try {
        n.mapUpdate(h, u32(7), u64(1n), BPF_NOEXIST);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(exists).toBeInstanceOf(NativeError);
    expect(exists).toMatchObject({ code: 'EEXIST', syscall: 'bpf_map_update_elem' });
    expect(() => n.mapUpdate(h, u32(9), u64(1n), BPF_EXIST)).toThrow(expect.objectContaining({ code: 'ENOENT' }));

    const keys: number[] = [];
    for (let k = n.mapGetNextKey(h, null, 4); k; k = n.mapGetNextKey(h, k, 4)) keys.push(k.readUInt32LE());
    expect(keys.sort()).toEqual([7, 8]);

    expect(n.mapDelete(h, u32(8))).toBe(true);
    expect(n.mapDelete(h, u32(8))).toBe(false);
    // Sizes that do not match the map are refused before the syscall.
    expect(() => n.mapLookup(h, Buffer.alloc(3), 8)).toThrow(RangeError);
    expect(() => n.mapLookup(h, u32(7), 4)).toThrow(RangeError);
    expect(() => n.mapUpdate(h, u32(7), Buffer.alloc(9), BPF_ANY)).toThrow(RangeError);
  });

  it('MapHandle: lookup into a buffer and update through its own fd, sizes checked once read', () => {
    const h = map('fixture_hash');
    const handle = new n.MapHandle(h);
    const out = Buffer.alloc(8);
    handle.update(u32(70), u64(4242n), BPF_ANY);
    expect(handle.lookup(u32(70), out)).toBe(true);
    expect(out.readBigUInt64LE()).toBe(4242n);
    expect(n.mapLookup(h, u32(70), 8)?.readBigUInt64LE()).toBe(4242n); // the same map
    expect(handle.lookup(u32(71), out)).toBe(false);
    expect(() => handle.update(u32(70), u64(1n), BPF_NOEXIST)).toThrow(expect.objectContaining({ code: 'EEXIST', syscall: 'bpf_map_update_elem' }));
    expect(() => handle.lookup(Buffer.alloc(3), out)).toThrow(RangeError);
    expect(() => handle.lookup(u32(70), Buffer.alloc(4))).toThrow(RangeError);
    expect(() => handle.update(u32(70), Buffer.alloc(9), BPF_ANY)).toThrow(RangeError);
    // Its fd is its own: a second handle closed, or the first closed, leaves the other working.
    const other = new n.MapHandle(h);
    other.close();
    expect(handle.lookup(u32(70), out)).toBe(true);
    handle.close();
    expect(() => handle.lookup(u32(70), out)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(n.mapDelete(h, u32(70))).toBe(true);
  });

  it('does batch update/lookup/delete on a hash map', () => {
    const h = map('fixture_hash');
    const count = 50;
    const keys = Buffer.concat(Array.from({ length: count }, (_, i) => u32(1000 + i)));
    const values = Buffer.concat(Array.from({ length: count }, (_, i) => u64(BigInt(i * 10))));
    n.mapUpdateBatch(h, keys, values, count, BPF_ANY);

    const dump = n.mapLookupBatch(h, 4, 8, 128);
    expect(dump.count).toBe(count + 1); // plus key 7 from the previous test
    expect(dump.keys.length).toBe(dump.count * 4);
    expect(dump.values.length).toBe(dump.count * 8);
    const got = new Map<number, bigint>();
    for (let i = 0; i < dump.count; i++) got.set(dump.keys.readUInt32LE(i * 4), dump.values.readBigUInt64LE(i * 8));
    expect(got.get(1000 + 17)).toBe(170n);
    expect(got.get(7)).toBe(42n);

    // A dump capped below the map size returns at most maxCount entries.
    expect(n.mapLookupBatch(h, 4, 8, 10).count).toBeLessThanOrEqual(10);

    // Missing keys in the middle are skipped, not fatal.
    const del = Buffer.concat([keys.subarray(0, 20), u32(99_999), keys.subarray(20, 40), u32(99_998)]);
    expect(n.mapDeleteBatch(h, del, 12)).toBe(10);
    expect(n.mapLookupBatch(h, 4, 8, 128).count).toBe(count + 1 - 10);
  });

  it('falls back to per-element ops where batch ops are unsupported (LPM trie)', () => {
    const lpm = map('fixture_lpm');
    const cidrs = ['10.244.0.0/16', '10.244.7.0/24', '10.96.0.0/12'];
    n.mapUpdateBatch(lpm, Buffer.concat(cidrs.map(lpmKey)), Buffer.concat(cidrs.map((_, i) => u32(i + 1))), 3, BPF_ANY);
    // Longest-prefix match on lookup.
    expect(n.mapLookup(lpm, lpmKey('10.244.7.9/32'), 4)?.readUInt32LE()).toBe(2);
    expect(n.mapLookup(lpm, lpmKey('10.244.9.9/32'), 4)?.readUInt32LE()).toBe(1);
    expect(n.mapLookup(lpm, lpmKey('192.168.0.1/32'), 4)).toBeUndefined();

    const dump = n.mapLookupBatch(lpm, 8, 4, 512);
    expect(dump.count).toBe(3);
    const seen = new Set<string>();
    for (let i = 0; i < dump.count; i++) seen.add(dump.keys.subarray(i * 8, i * 8 + 8).toString('hex'));
    expect(seen).toEqual(new Set(cidrs.map((c) => lpmKey(c).toString('hex'))));

    expect(n.mapDeleteBatch(lpm, Buffer.concat([lpmKey('10.244.7.0/24'), lpmKey('10.1.0.0/16')]), 2)).toBe(1);
    expect(n.mapLookupBatch(lpm, 8, 4, 512).count).toBe(2);
  });

  it('reuses pinned maps on reload, and maps passed in reuseMaps', () => {
    const again = load({ pinRoot, reuseMaps: { fixture_lpm: map('fixture_lpm') } });
    const hashId = n.mapInfo(map('fixture_hash')).id;
    expect(n.mapInfo(again.maps['fixture_hash'] ?? -1).id).toBe(hashId);
    expect(n.mapLookup(again.maps['fixture_hash'] ?? -1, u32(7), 8)?.readBigUInt64LE()).toBe(42n);
    expect(n.mapInfo(again.maps['fixture_lpm'] ?? -1).id).toBe(n.mapInfo(map('fixture_lpm')).id);
    // Not pinned and not reused: a fresh map.
    expect(n.mapInfo(again.maps['fixture_counter'] ?? -1).id).not.toBe(n.mapInfo(map('fixture_counter')).id);

    const pinned = n.objGet(join(pinRoot, 'fixture_hash'));
    expect(pinned).toBeTypeOf('number');
    fds.push(pinned ?? -1);
    expect(n.mapInfo(pinned ?? -1).id).toBe(hashId);

    n.objPin(map('fixture_lpm'), join(pinRoot, 'extra_lpm'));
    const extra = n.objGet(join(pinRoot, 'extra_lpm'));
    fds.push(extra ?? -1);
    expect(n.mapInfo(extra ?? -1).name).toBe('fixture_lpm');
    expect(n.objGet(join(pinRoot, 'nothing_here'))).toBeUndefined();
  });

  it('refuses an incompatible pinned map, with libbpf reasons in details', () => {
    let err: unknown;
    try {
      load({ pinRoot, maxEntries: { fixture_hash: 5 } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NativeError);
    expect(err).toMatchObject({ code: 'EINVAL', syscall: 'bpf_object__load' });
    expect((err as NativeError).details).toContain('parameter mismatch');
  });

  it('puts the verifier log in details when a program is rejected', () => {
    let err: unknown;
    try {
      n.objLoad(bad, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NativeError);
    const ne = err as NativeError;
    expect(ne.syscall).toBe('bpf_object__load');
    expect(ne.code).toBe('EACCES');
    expect(ne.details).toContain('BEGIN PROG LOAD LOG');
    expect(ne.details).toContain('invalid access to packet');
    expect(ne.message).toContain('verifier:');
  });

  it('test-runs the program: retval, counter and ring buffer records', () => {
    const ncpus = n.numPossibleCpus();
    expect(ncpus).toBeGreaterThan(0);
    const counter = map('fixture_counter');
    const perCpu = (): bigint => {
      const v = n.mapLookup(counter, u32(0), 8 * ncpus);
      let sum = 0n;
      for (let i = 0; i < ncpus; i++) sum += v?.readBigUInt64LE(i * 8) ?? 0n;
      return sum;
    };
    const before = perCpu();

    const rb = n.ringbufOpen(map('fixture_events'));
    cleanup.add(() => n.ringbufClose(rb));
    expect(n.ringbufEpollFd(rb)).toBeGreaterThan(2);
    expect(n.ringbufConsume(rb, 10)).toEqual([]);

    const pkt = frame();
    const res = n.progTestRun(prog(), pkt, { repeat: 3 });
    expect(res.retval).toBe(0); // TC_ACT_OK
    expect(res.data.equals(pkt)).toBe(true);
    expect(res.durationNs).toBeGreaterThanOrEqual(0);
    expect(perCpu() - before).toBe(3n);

    const firstTwo = n.ringbufConsume(rb, 2);
    expect(firstTwo).toHaveLength(2);
    expect(firstTwo[0]?.readUInt32LE(0)).toBe(0x51ce);
    expect(firstTwo[0]?.readUInt32LE(4)).toBe(64);
    expect(n.ringbufConsume(rb, 10)).toHaveLength(1);
    expect(n.ringbufConsume(rb, 10)).toEqual([]);

    expect(() => n.progTestRun(prog(), pkt, { dataOutSize: 10 })).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
  });

  it('frees ring buffers a JS environment still owns when it is torn down', async () => {
    const before = ringResources();
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const addon = require(workerData.addon);
       parentPort.postMessage([addon.ringbufOpen(workerData.fd), addon.ringbufOpen(workerData.fd)]);
       // Stay alive until told to go, then exit without ringbufClose: the
       // env cleanup hook must free both.
       parentPort.once('message', () => parentPort.close());`,
      { eval: true, workerData: { addon: ADDON, fd: map('fixture_events') } },
    );
    const [handles] = (await once(worker, 'message')) as [number[]];
    expect(handles).toHaveLength(2);
    const during = ringResources();
    expect(during.epollFds).toBeGreaterThanOrEqual(before.epollFds + 2);
    expect(during.bpfMappedBytes).toBeGreaterThan(before.bpfMappedBytes);
    const exited = once(worker, 'exit');
    worker.postMessage('exit');
    await exited;
    expect(ringResources()).toEqual(before);
  });

  it('attaches to tc in a netns, queries and detaches', () => {
    const ns = cleanup.netns('tc');
    const dev = uniqueName('t');
    n.linkAddVeth(ns.path, dev, uniqueName('p'), {});
    const id = n.progInfo(prog()).id;

    expect(n.tcQuery(ns.path, dev, 'ingress')).toBeUndefined(); // no clsact yet
    expect(n.tcDetach(ns.path, dev, 'ingress')).toBe(false);

    expect(n.tcAttach(ns.path, dev, 'ingress', prog())).toEqual({ priority: 1, handle: 1, progId: id });
    // Replacing in place is fine.
    expect(n.tcAttach(ns.path, dev, 'ingress', prog()).progId).toBe(id);
    expect(n.tcAttach(ns.path, dev, 'egress', prog(), { priority: 2, handle: 3 })).toEqual({ priority: 2, handle: 3, progId: id });

    expect(n.tcQuery(ns.path, dev, 'ingress')).toBe(id);
    expect(n.tcQuery(ns.path, dev, 'egress', { priority: 2, handle: 3 })).toBe(id);
    expect(n.tcQuery(ns.path, dev, 'egress')).toBeUndefined();
    expect(ns.exec('tc', ['filter', 'show', 'dev', dev, 'ingress'])).toMatch(/fixture_prog.*direct-action/);
    // It was attached inside the netns only.
    expect(n.tcQuery(null, 'lo', 'ingress')).toBeUndefined();

    expect(n.tcDetach(ns.path, dev, 'ingress')).toBe(true);
    expect(n.tcQuery(ns.path, dev, 'ingress')).toBeUndefined();
    expect(n.tcDetach(ns.path, dev, 'ingress')).toBe(false);
    expect(n.tcDetach(ns.path, dev, 'egress', { priority: 2, handle: 3 })).toBe(true);
  });
});
