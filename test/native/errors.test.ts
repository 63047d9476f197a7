// Error shapes of the addon: expected absence is a value, OS failures are
// NativeError with errno name / syscall / details, bad arguments are
// TypeError or RangeError (never a crash).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { NativeError, native } from '../../src/native/index.js';
import type { NativeAddon } from '../../src/native/index.js';
import { Cleanup, isRoot, uniqueName } from '../helpers/netns.js';
import type { Netns } from '../helpers/netns.js';

/** Runs fn, which must throw, and returns what it threw. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

function nativeError(fn: () => unknown): NativeError {
  const err = thrown(fn);
  expect(err).toBeInstanceOf(NativeError);
  return err as NativeError;
}

describe('NativeError', () => {
  it('builds a message from its fields and keeps long details out of it', () => {
    const short = new NativeError({ code: 'EEXIST', errno: 17, syscall: 'RTM_NEWLINK', details: 'File exists' });
    expect(short.message).toBe('RTM_NEWLINK: EEXIST: File exists');
    expect(short.name).toBe('NativeError');
    expect(short).toBeInstanceOf(Error);
    const log = "libbpf: prog 'p': BPF program load failed\n0: R1=ctx()\ninvalid access to packet\nprocessed 2 insns (limit 1000000)\n";
    const long = new NativeError({ code: 'EACCES', errno: 13, syscall: 'bpf_object__load', details: log });
    expect(long.message).toContain("prog 'p': BPF program load failed");
    expect(long.message).toContain('verifier: invalid access to packet');
    expect(long.details).toBe(log);
  });
});

describe.skipIf(!isRoot)('native error shapes', () => {
  const cleanup = new Cleanup();
  let n: NativeAddon;
  let ns: Netns;
  let other: Netns;
  const missingNs = '/var/run/netns/slt-does-not-exist';

  beforeAll(() => {
    n = native();
    ns = cleanup.netns('e');
    other = cleanup.netns('o');
  });
  afterAll(() => cleanup.run());

  it('reports missing links as undefined / false', () => {
    expect(n.linkGet(ns.path, 'sltmissing0')).toBeUndefined();
    expect(n.linkGetByIndex(ns.path, 999_999)).toBeUndefined();
    expect(n.linkDel(ns.path, 'sltmissing0')).toBe(false);
    expect(n.tcQuery(ns.path, 'sltmissing0', 'ingress')).toBeUndefined();
    expect(n.tcDetach(ns.path, 'sltmissing0', 'ingress')).toBe(false);
    expect(n.sysctlRead(ns.path, 'net/ipv4/conf/sltmissing0/forwarding')).toBeUndefined();
  });

  it('reports a veth name clash as EEXIST, in either namespace', () => {
    const a = uniqueName('c');
    n.linkAddVeth(ns.path, a, 'eth0', { peerNetns: other.path });
    const same = nativeError(() => n.linkAddVeth(ns.path, a, uniqueName('d'), {}));
    expect(same).toMatchObject({ code: 'EEXIST', errno: 17, syscall: 'RTM_NEWLINK' });
    // The peer name clashes only inside the peer's namespace.
    const peer = nativeError(() => n.linkAddVeth(ns.path, uniqueName('f'), 'eth0', { peerNetns: other.path }));
    expect(peer.code).toBe('EEXIST');
    expect(n.linkGet(ns.path, 'eth0')).toBeUndefined();
  });

  it('reports a missing netns path as ENOENT from open', () => {
    for (const fn of [
      () => n.linkList(missingNs),
      () => n.sysctlRead(missingNs, 'net/ipv4/ip_forward'),
      () => n.tcQuery(missingNs, 'lo', 'ingress'),
      () => n.linkAddVeth(ns.path, uniqueName('g'), uniqueName('h'), { peerNetns: missingNs }),
    ]) {
      const err = nativeError(fn);
      expect(err).toMatchObject({ code: 'ENOENT', errno: 2, syscall: 'open', details: missingNs });
      expect(err.message).toContain(missingNs);
    }
  });

  it('reports a missing link as ENODEV and carries the kernel extack text', () => {
    expect(nativeError(() => n.addrAdd(ns.path, 'sltmissing0', '10.244.1.1/24'))).toMatchObject({
      code: 'ENODEV',
      syscall: 'if_nametoindex',
      details: 'sltmissing0',
    });
    // No route to the gateway: the kernel explains why in the extended ack.
    const err = nativeError(() => n.routeAdd(ns.path, { dst: '10.244.50.0/24', gateway: '10.244.51.1' }));
    expect(err.syscall).toBe('RTM_NEWROUTE');
    expect(err.code).toBe('ENETUNREACH');
    expect(err.details.length).toBeGreaterThan(0);
  });

  it('rejects bad arguments with TypeError/RangeError', () => {
    const bad: Array<() => unknown> = [
      () => n.addrAdd(ns.path, 'lo', '10.244.0.1'),
      () => n.addrAdd(ns.path, 'lo', '10.244.0.1/33'),
      () => n.addrAdd(ns.path, 'lo', 'not-an-ip/24'),
      () => n.routeAdd(ns.path, { dst: 'default' }),
      () => n.routeAdd(ns.path, { dst: '10.0.0.0/8', gateway: 'fd00::1' }),
      () => n.linkAddVeth(ns.path, 'a-name-longer-than-15', 'x', {}),
      () => n.linkSet(ns.path, 'lo', { mac: 'zz:zz' }),
      () => n.sysctlRead(ns.path, '../../etc/passwd'),
      () => n.sysctlWrite(ns.path, '/proc/sys/net/ipv4/ip_forward', '1'),
      () => n.tcQuery(ns.path, 'lo', 'sideways' as 'ingress'),
      // Wrong types straight through the untyped boundary.
      () => (n.linkGet as (...args: unknown[]) => unknown)(ns.path, 42),
      () => (n.linkList as (...args: unknown[]) => unknown)(17),
      () => (n.mapLookup as (...args: unknown[]) => unknown)('3', Buffer.alloc(4), 8),
      () => (n.mapLookup as (...args: unknown[]) => unknown)(3, 'key', 8),
      () => n.close(-1),
    ];
    for (const fn of bad) {
      const err = thrown(fn);
      expect(err instanceof TypeError || err instanceof RangeError, String(err)).toBe(true);
    }
    // The namespace is untouched.
    expect(n.addrList(ns.path, 'lo').map((a) => a.address)).toEqual(['127.0.0.1', '::1']);
  });

  it('reports BPF failures as NativeError and absent pins as undefined', () => {
    expect(n.objGet('/sys/fs/bpf/slt-no-such-pin')).toBeUndefined();
    // Recent kernels say EBADFD (not EBADF) for a bad fd in BPF_OBJ_GET_INFO_BY_FD.
    const badFd = nativeError(() => n.mapInfo(999_999));
    expect(badFd.syscall).toBe('bpf_obj_get_info_by_fd');
    expect(['EBADF', 'EBADFD']).toContain(badFd.code);
    expect(nativeError(() => n.objLoad('/nonexistent/x.bpf.o', {}))).toMatchObject({
      code: 'ENOENT',
      syscall: 'bpf_object__open_file',
    });
    expect(nativeError(() => n.ringbufConsume(12345, 1))).toMatchObject({ code: 'EBADF' });
  });
});
