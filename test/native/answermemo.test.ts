// The DNS proxy's memo of answers that change nothing (native/answermemo.cc),
// on real answers made with dns-packet: a repeat (another id, other TTLs)
// hits only while every address's new expiry stays inside its window, any
// other byte makes it miss, forgetting one of its names (the question or a
// CNAME target) or clearing makes it miss, and what the proxy's parser would
// read differently from the memo (other record types, compression pointers
// into a TTL, names with escapes) is never remembered. A socket given a memo
// reports its verdict per datagram, and sends a hit that answers a query it
// expects straight to the pod (RELEASE), and nothing else. A repeat that
// would move an expiry while its allows have at least the grace left is a
// refresh (REFRESH), released the same way.
import dgram from 'node:dgram';
import * as dnsPacket from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { native, type NativeAnswerMemo, type UdpBatchSocket } from '../../src/native/index.js';
import { MEMO_ADDRESSES, MEMO_HIT, MEMO_REFRESH, MEMO_RELEASED, UDP_MEMO_SHIFT } from '../../src/dns/proxy.js';
import { until } from '../helpers/wait.js';

const HIT = MEMO_HIT | MEMO_ADDRESSES;
const MIN_TTL_MS = 2_000;
const GRACE_MS = 500;

function response(opts: { id?: number; name?: string; answers?: dnsPacket.Answer[]; rcode?: string; authorities?: dnsPacket.Answer[] } = {}): Buffer {
  const name = opts.name ?? 'api.example';
  return dnsPacket.encode({
    type: 'response',
    id: opts.id ?? 1,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (opts.rcode === 'NXDOMAIN' ? 3 : 0),
    questions: [{ type: 'A', name }],
    answers: opts.answers ?? [
      { type: 'A', name, ttl: 60, data: '192.0.2.1' },
      { type: 'A', name, ttl: 30, data: '192.0.2.2' },
    ],
    authorities: opts.authorities ?? [],
  });
}

/** The windows of an answer's addresses, flat (lo, hi, until per address; until, the allows' earliest expiry, -∞ unless given: never a refresh). */
const windows = (...w: Array<[number, number, number?]>): Float64Array => Float64Array.from(w.flatMap(([lo, hi, until]) => [lo, hi, until ?? -Infinity]));

/** The expiry the memo computes for a TTL at `now`, as the FQDN cache does. */
const expiry = (now: number, ttl: number): number => now + Math.max(ttl * 1000, MIN_TTL_MS) + GRACE_MS;

let memo: NativeAnswerMemo;
const memoOf = (slots = 64): NativeAnswerMemo => (memo = new (native().AnswerMemo)(slots, MIN_TTL_MS, GRACE_MS));

describe('AnswerMemo', () => {
  const NOW = 1_000_000;

  it('hits a repeat of a remembered answer (another id, other TTLs) while each expiry stays in its window', () => {
    memoOf();
    const first = response();
    // Windows as the cache would give them right after learning at NOW: [expiry, expiry + slack).
    expect(memo.remember(first, windows([expiry(NOW, 60), expiry(NOW, 60) + 950], [expiry(NOW, 30), expiry(NOW, 30) + 950]), 2)).toBe(true);
    expect(memo.stored).toBe(1);
    expect(memo.check(response({ id: 999 }), NOW + 500)).toBe(HIT);
    // A TTL counting down (a caching resolver): the same expiry, still a hit.
    const later = response({ id: 2, answers: [{ type: 'A', name: 'api.example', ttl: 55, data: '192.0.2.1' }, { type: 'A', name: 'api.example', ttl: 25, data: '192.0.2.2' }] });
    expect(memo.check(later, NOW + 5_000)).toBe(HIT);
    // Past the window of one address (its expiry would move by the slack): a miss.
    expect(memo.check(response(), NOW + 950)).toBe(0);
    // Before it (a shorter TTL would shorten the expiry): a miss.
    const shorter = response({ answers: [{ type: 'A', name: 'api.example', ttl: 10, data: '192.0.2.1' }, { type: 'A', name: 'api.example', ttl: 30, data: '192.0.2.2' }] });
    expect(memo.check(shorter, NOW)).toBe(0);
    expect(memo.hits).toBe(2);
    expect(memo.misses).toBe(2);
  });

  it('judges a repeat that would move an expiry a refresh while every address\'s allows have at least the grace left, then a miss', () => {
    memoOf();
    // As the cache gives them right after learning at NOW: [expiry, expiry + slack), and the allows programmed until expiry.
    const [e60, e30] = [expiry(NOW, 60), expiry(NOW, 30)];
    expect(memo.remember(response(), windows([e60, e60 + 950, e60], [e30, e30 + 950, e30]), 2)).toBe(true);
    expect(memo.check(response({ id: 5 }), NOW + 500)).toBe(HIT);
    // Past the windows: the expiries would move, yet the earlier of the two allows (e30) is more than the grace away.
    const REFRESH = MEMO_REFRESH | MEMO_ADDRESSES;
    expect(memo.check(response({ id: 6 }), NOW + 950)).toBe(REFRESH);
    expect(memo.check(response({ id: 7 }), e30 - GRACE_MS)).toBe(REFRESH);
    // Less than the grace left on one address's allows: a miss (learned before release).
    expect(memo.check(response({ id: 8 }), e30 - GRACE_MS + 1)).toBe(0);
    // Any other byte, or a forgotten name, is a miss as for a hit.
    expect(memo.check(response({ answers: [{ type: 'A', name: 'api.example', ttl: 60, data: '192.0.2.1' }, { type: 'A', name: 'api.example', ttl: 30, data: '192.0.2.3' }] }), NOW + 950)).toBe(0);
    memo.forget('api.example');
    expect(memo.check(response(), NOW + 950)).toBe(0);
    expect([memo.hits, memo.refreshes, memo.misses]).toEqual([1, 2, 3]);
    // An answer without addresses has no expiry to move: always a hit.
    const nx = response({ rcode: 'NXDOMAIN', answers: [] });
    memo.remember(nx, new Float64Array(0), 0);
    expect(memo.check(nx, NOW + 1e9)).toBe(MEMO_HIT);
  });

  it('computes a TTL under the minimum, and one with the top bit set, as the cache does (max(TTL, min TTL) + grace; RFC 2181: 0)', () => {
    memoOf();
    const at = (ttl: number) => response({ answers: [{ type: 'A', name: 'api.example', ttl, data: '192.0.2.1' }] });
    // Remembered with the window of a minimum-TTL expiry at NOW.
    expect(memo.remember(at(1), windows([NOW + MIN_TTL_MS + GRACE_MS, NOW + MIN_TTL_MS + GRACE_MS + 100]), 1)).toBe(true);
    expect(memo.check(at(0), NOW + 50)).toBe(HIT);
    expect(memo.check(at(0x80000001), NOW + 50)).toBe(HIT);
    expect(memo.check(at(3), NOW + 50)).toBe(0); // 3 s > the 2 s minimum: beyond the window
  });

  it('misses on any other byte: another address, another name, another record, another flag or an authority record', () => {
    memoOf();
    const wide = windows([-Infinity, Infinity], [-Infinity, Infinity]);
    expect(memo.remember(response(), wide, 2)).toBe(true);
    expect(memo.check(response(), NOW)).toBe(HIT);
    const other = (answers: dnsPacket.Answer[]) => response({ answers });
    expect(memo.check(other([{ type: 'A', name: 'api.example', ttl: 60, data: '192.0.2.1' }, { type: 'A', name: 'api.example', ttl: 30, data: '192.0.2.3' }]), NOW)).toBe(0);
    expect(memo.check(other([{ type: 'A', name: 'api.example', ttl: 60, data: '192.0.2.1' }]), NOW)).toBe(0);
    expect(memo.check(response({ name: 'api.examplf' }), NOW)).toBe(0);
    const flags = response();
    flags[3]! ^= 0x80; // RA
    expect(memo.check(flags, NOW)).toBe(0);
    expect(memo.check(response({ authorities: [{ type: 'NS', name: 'example', ttl: 60, data: 'ns.example' }] }), NOW)).toBe(0);
    expect(memo.check(response().subarray(0, 60), NOW)).toBe(0);
  });

  it('misses once one of its names is forgotten: the question or a CNAME target, in any case; not for another name', () => {
    memoOf();
    const chain = response({
      answers: [
        { type: 'CNAME', name: 'api.example', ttl: 60, data: 'Edge.CDN.example' },
        { type: 'A', name: 'Edge.CDN.example', ttl: 60, data: '192.0.2.9' },
      ],
    });
    expect(memo.remember(chain, windows([-Infinity, Infinity]), 1)).toBe(true);
    memo.forget('unrelated.example');
    expect(memo.check(chain, NOW)).toBe(HIT);
    memo.forget('edge.cdn.example');
    expect(memo.check(chain, NOW)).toBe(0);
    expect(memo.remember(chain, windows([-Infinity, Infinity]), 1)).toBe(true);
    expect(memo.check(chain, NOW)).toBe(HIT);
    memo.forget('api.example');
    expect(memo.check(chain, NOW)).toBe(0);
    expect(memo.remember(chain, windows([-Infinity, Infinity]), 1)).toBe(true);
    memo.clear();
    expect(memo.check(chain, NOW)).toBe(0);
  });

  it('remembers an answer without addresses (NXDOMAIN) as a hit without MEMO_ADDRESSES', () => {
    memoOf();
    const nx = response({ rcode: 'NXDOMAIN', answers: [] });
    expect(memo.remember(nx, new Float64Array(0), 0)).toBe(true);
    expect(memo.check(nx, NOW)).toBe(MEMO_HIT);
  });

  it('remembers nothing the proxy\'s parser could read differently, nor with the wrong number of windows', () => {
    memoOf();
    const wide = windows([-Infinity, Infinity], [-Infinity, Infinity]);
    expect(memo.remember(response(), wide, 1)).toBe(false); // two addresses
    expect(memo.remember(response({ answers: [{ type: 'TXT', name: 'api.example', ttl: 60, data: 'x' }] }), wide, 0)).toBe(false);
    expect(memo.remember(response({ answers: [{ type: 'A', name: 'a\\.b.example', ttl: 60, data: '192.0.2.1' }] }), wide, 1)).toBe(false);
    // A CNAME whose target is a compression pointer into the A record's TTL field.
    const q = Buffer.from('03617069076578616d706c650000010001', 'hex'); // api.example A IN
    const header = Buffer.from('00018180000100020000' + '0000', 'hex');
    const cname = Buffer.concat([Buffer.from('c00c000500010000003c0002', 'hex'), Buffer.alloc(2)]);
    const a = Buffer.from('c00c00010001000000' + '3c0004c0000201', 'hex');
    const msg = Buffer.concat([header, q, cname, a]);
    const aTtl = header.length + q.length + cname.length + 2 + 2 + 2; // owner, type, class
    msg.writeUInt16BE(0xc000 | aTtl, header.length + q.length + 12);
    expect(memo.remember(msg, wide, 1)).toBe(false);
    // The same shape with the pointer at the question's name: remembered.
    msg.writeUInt16BE(0xc00c, header.length + q.length + 12);
    expect(memo.remember(msg, wide, 1)).toBe(true);
    expect(memo.check(msg, NOW)).toBe(HIT);
    // A question with a pointer: never.
    const pq = Buffer.concat([header, Buffer.from('c00c00010001', 'hex')]);
    pq.writeUInt16BE(0, 6);
    expect(memo.remember(pq, new Float64Array(0), 0)).toBe(false);
  });

  it('survives any bytes: truncations and garbage never hit and never throw', () => {
    memoOf();
    const good = response();
    memo.remember(good, windows([-Infinity, Infinity], [-Infinity, Infinity]), 2);
    for (let n = 0; n < good.length; n++) expect(memo.check(good.subarray(0, n), NOW)).toBe(0);
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    for (let i = 0; i < 2_000; i++) {
      const junk = Buffer.from(good);
      for (let k = 0; k < 4; k++) junk[rand() % junk.length] = rand() & 255;
      const v = memo.check(junk, NOW);
      // A hit only when the bytes it compares are the remembered ones (the changes hit the id or a TTL).
      if (v) expect(junk.subarray(2, 40).equals(good.subarray(2, 40))).toBe(true);
      memo.remember(junk, new Float64Array(64), 2);
    }
  });

  it('remembers an answer at its second learning, not its first, with secondSight; once remembered, at once again', () => {
    memo = new (native().AnswerMemo)(64, MIN_TTL_MS, GRACE_MS, true);
    const wide = windows([-Infinity, Infinity], [-Infinity, Infinity]);
    expect(memo.remember(response(), wide, 2)).toBe(false); // first sight: noted, not remembered
    expect(memo.check(response(), NOW)).toBe(0);
    expect(memo.remember(response({ name: 'other.example' }), wide, 2)).toBe(false);
    expect(memo.remember(response(), wide, 2)).toBe(true);
    expect(memo.check(response({ id: 9 }), NOW)).toBe(HIT);
    expect(memo.stored).toBe(1);
    // Remembered again (its windows moved): in its own slot at once.
    expect(memo.remember(response(), windows([-Infinity, -Infinity], [-Infinity, -Infinity]), 2)).toBe(true);
    expect(memo.check(response(), NOW)).toBe(0);
    // Not memoizable is not a sight: a TXT answer stays unremembered.
    const txt = response({ answers: [{ type: 'TXT', name: 'api.example', ttl: 60, data: 'x' }] });
    expect([memo.remember(txt, wide, 0), memo.remember(txt, wide, 0)]).toEqual([false, false]);
  });

  it('keeps four answers per set: the oldest goes when a fifth comes', () => {
    memoOf(4); // one set of four
    const none = new Float64Array(0);
    const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map((n) => response({ name: `${n}.example`, answers: [] }));
    for (const m of [a, b, c, d]) expect(memo.remember(m!, none, 0)).toBe(true);
    expect([a, b, c, d].map((m) => memo.check(m!, NOW))).toEqual([MEMO_HIT, MEMO_HIT, MEMO_HIT, MEMO_HIT]);
    memo.remember(a!, none, 0); // a again: its own slot, now the newest
    memo.remember(e!, none, 0); // over b, the oldest
    expect([a, b, c, d, e].map((m) => memo.check(m!, NOW))).toEqual([MEMO_HIT, 0, MEMO_HIT, MEMO_HIT, MEMO_HIT]);
  });

  it('rejects a slot count that is not a power of two', () => {
    expect(() => new (native().AnswerMemo)(3, 0, 0)).toThrow(/power of two/);
    expect(() => new (native().AnswerMemo)(2, 0, 0)).toThrow(/from 4/);
  });
});

describe('UdpBatch with an AnswerMemo', () => {
  const open: Array<UdpBatchSocket | dgram.Socket> = [];
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });

  it('reports the memo\'s verdict on each datagram in its port field', async () => {
    memoOf();
    const known = response({ name: 'known.example' });
    memo.remember(known, windows([-Infinity, Infinity], [-Infinity, Infinity]), 2);
    // A port of our own choosing (the addon has no getsockname): a few tries at a random one.
    let fd = -1;
    let target = 0;
    for (let tries = 0; fd < 0; tries++) {
      target = 20_000 + Math.floor(Math.random() * 40_000);
      try {
        fd = native().socketBind(4, 'udp', '127.0.0.1', target);
      } catch (err) {
        if (tries > 10) throw err;
      }
    }
    const verdicts = new Map<string, number>();
    let port = 0;
    const got = new Promise<void>((resolve) => {
      const s = new (native().UdpBatch)(
        fd,
        (count, data, meta) => {
          for (let i = 0; i < count; i++) {
            const msg = data.subarray(meta[4 * i]!, meta[4 * i]! + meta[4 * i + 1]!);
            verdicts.set(dnsPacket.decode(Buffer.from(msg)).questions![0]!.name, meta[4 * i + 2]! >>> UDP_MEMO_SHIFT);
            if ((meta[4 * i + 2]! & 0xffff) !== port) throw new Error('the port field lost its port');
          }
          if (verdicts.size === 2) resolve();
        },
        undefined,
        memo,
      );
      open.push(s);
    });
    const client = dgram.createSocket('udp4');
    open.push(client);
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    port = client.address().port;
    client.send(response({ id: 77, name: 'known.example' }), target, '127.0.0.1');
    client.send(response({ name: 'unknown.example' }), target, '127.0.0.1');
    await got;
    expect(Object.fromEntries(verdicts)).toEqual({ 'known.example': HIT, 'unknown.example': 0 });
  });

  /** A UDP socket on 127.0.0.1 whose datagrams (and their sources) queue up. */
  const LOOPBACK = { 4: '127.0.0.1', 6: '::1' } as const;

  async function peer(family: 4 | 6 = 4): Promise<{ sock: dgram.Socket; port: number; inbox: Array<{ msg: Buffer; port: number }> }> {
    const sock = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
    open.push(sock);
    const inbox: Array<{ msg: Buffer; port: number }> = [];
    sock.on('message', (msg, r) => inbox.push({ msg, port: r.port }));
    await new Promise<void>((r) => sock.bind(0, LOOPBACK[family], r));
    return { sock, port: sock.address().port, inbox };
  }

  const settle = (ms = 100) => new Promise((r) => setTimeout(r, ms));

  it.each([4, 6] as const)('IPv%s: sends a hit that answers an expected query to its pod itself (RELEASE), once, and nothing else', async (family) => {
    const lo = LOOPBACK[family];
    memoOf();
    memo.remember(response({ name: 'known.example' }), windows([-Infinity, Infinity], [-Infinity, Infinity]), 2);
    memo.remember(response({ name: 'other.example' }), windows([-Infinity, Infinity], [-Infinity, Infinity]), 2);
    // Its windows passed, its allows programmed for ever: every repeat a refresh.
    memo.remember(response({ name: 'stale.example' }), windows([-Infinity, -Infinity, Infinity], [-Infinity, -Infinity, Infinity]), 2);
    const [resolver, rogue, pod] = [await peer(family), await peer(family), await peer(family)];
    const verdicts: Array<{ id: number; verdict: number }> = [];
    const listener = new (native().UdpBatch)(native().socketBind(family, 'udp', lo, 0), () => {});
    open.push(listener);
    const upstream = new (native().UdpBatch)(
      native().socketBind(family, 'udp', lo, 0),
      (count, data, meta) => {
        for (let i = 0; i < count; i++) verdicts.push({ id: data.readUInt16BE(meta[4 * i]!), verdict: meta[4 * i + 2]! >>> UDP_MEMO_SHIFT });
      },
      undefined,
      memo,
    );
    open.push(upstream);
    // The query goes out with the upstream's id; the answer is to reach the pod with the pod's (0x0042).
    const expect_ = async (id: number, name = 'known.example', maxBytes = 1232): Promise<number> => {
      const q = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] });
      const before = resolver.inbox.length;
      expect(upstream.sendExpecting(q, lo, resolver.port, listener, lo, pod.port, 0x0042, q.length - 12, maxBytes)).toBe(true);
      await until('the query at the resolver', () => resolver.inbox.length > before, 2000, 10);
      return resolver.inbox.at(-1)!.port; // the upstream socket's port
    };
    const reply = async (from: { sock: dgram.Socket }, to: number, msg: Buffer): Promise<number> => {
      const n = verdicts.length;
      from.sock.send(msg, to, lo);
      await until('the answer read', () => verdicts.length > n, 2000, 10);
      return verdicts.at(-1)!.verdict;
    };

    // Expected, from the resolver, the query's question: to the pod with its id, through the listener.
    const to = await expect_(0x1234);
    expect(await reply(resolver, to, response({ id: 0x1234, name: 'known.example' }))).toBe(HIT | MEMO_RELEASED);
    await until('the released answer at the pod', () => pod.inbox.length === 1, 2000, 10);
    expect(pod.inbox).toHaveLength(1);
    expect(pod.inbox[0]!.msg.readUInt16BE(0)).toBe(0x0042);
    expect(pod.inbox[0]!.msg.subarray(2)).toEqual(response({ id: 0x1234, name: 'known.example' }).subarray(2));
    // Once: a repeat of it is only a hit.
    expect(await reply(resolver, to, response({ id: 0x1234, name: 'known.example' }))).toBe(HIT);
    // A refresh is released as a hit is (then learned by JavaScript).
    await expect_(0x1235, 'stale.example');
    expect(await reply(resolver, to, response({ id: 0x1235, name: 'stale.example' }))).toBe(MEMO_REFRESH | MEMO_ADDRESSES | MEMO_RELEASED);
    await until('the released refresh at the pod', () => pod.inbox.length === 2, 2000, 10);
    expect(pod.inbox[1]!.msg.readUInt16BE(0)).toBe(0x0042);
    pod.inbox.pop();
    // From another port, or echoing another (remembered) question, or longer than the pod's path takes: not released.
    await expect_(0x2345);
    expect(await reply(rogue, to, response({ id: 0x2345, name: 'known.example' }))).toBe(HIT);
    expect(await reply(resolver, to, response({ id: 0x2345, name: 'other.example' }))).toBe(HIT);
    expect(await reply(resolver, to, response({ id: 0x2345, name: 'known.example' }))).toBe(HIT | MEMO_RELEASED); // still expected
    await expect_(0x3456, 'known.example', 40);
    expect(await reply(resolver, to, response({ id: 0x3456, name: 'known.example' }))).toBe(HIT);
    // A miss is JavaScript's, expected or not.
    await expect_(0x4567);
    expect(await reply(resolver, to, response({ id: 0x4567, name: 'known.example', answers: [{ type: 'A', name: 'known.example', ttl: 60, data: '192.0.2.9' }] }))).toBe(0);
    // Settled elsewhere (unexpect), or its listener closed: not released.
    upstream.unexpect(0x4567);
    expect(await reply(resolver, to, response({ id: 0x4567, name: 'known.example' }))).toBe(HIT);
    await expect_(0x5678);
    listener.close();
    expect(await reply(resolver, to, response({ id: 0x5678, name: 'known.example' }))).toBe(HIT);
    await settle();
    expect(pod.inbox).toHaveLength(2);
    expect(pod.inbox.map((m) => m.msg.readUInt16BE(0))).toEqual([0x0042, 0x0042]);
    expect(() => upstream.sendExpecting(Buffer.alloc(12), lo, resolver.port, {} as UdpBatchSocket, lo, 1, 1, 0, 512)).toThrow(/UdpBatch/);
    if (family === 4) {
      // IPv4 addresses as numbers: the same expectation, no text made or parsed; a number no address is refused.
      const live = new (native().UdpBatch)(native().socketBind(4, 'udp', lo, 0), () => {});
      open.push(live);
      const q = dnsPacket.encode({ type: 'query', id: 0x6789, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'known.example' }] });
      const before = resolver.inbox.length;
      expect(upstream.sendExpecting(q, 0x7f000001, resolver.port, live, 0x7f000001, pod.port, 0x0043, q.length - 12, 1232)).toBe(true);
      await until('the query at the resolver', () => resolver.inbox.length > before, 2000, 10);
      expect(await reply(resolver, to, response({ id: 0x6789, name: 'known.example' }))).toBe(HIT | MEMO_RELEASED);
      await until('the released answer at the pod', () => pod.inbox.length === 3, 2000, 10);
      expect(pod.inbox[2]!.msg.readUInt16BE(0)).toBe(0x0043);
      for (const bad of [-1, 2 ** 32, 1.5, NaN]) expect(() => upstream.sendExpecting(q, bad, resolver.port, live, 0x7f000001, pod.port, 1, 0, 512)).toThrow(/IPv4 address as a number/);
    }
  });

  it('keeps hundreds of expectations of one socket apart through expecting, unexpecting and releasing in any order', async () => {
    memoOf();
    memo.remember(response({ name: 'known.example' }), windows([-Infinity, Infinity], [-Infinity, Infinity]), 2);
    const [resolver, pod] = [await peer(), await peer()];
    const released = new Map<number, boolean>();
    const listener = new (native().UdpBatch)(native().socketBind(4, 'udp', '127.0.0.1', 0), () => {});
    const upstream = new (native().UdpBatch)(
      native().socketBind(4, 'udp', '127.0.0.1', 0),
      (count, data, meta) => {
        for (let i = 0; i < count; i++) released.set(data.readUInt16BE(meta[4 * i]!), ((meta[4 * i + 2]! >>> UDP_MEMO_SHIFT) & MEMO_RELEASED) !== 0);
      },
      undefined,
      memo,
    );
    open.push(listener, upstream);
    // 600 distinct ids (a third of the table), expected in one order, a quarter unexpected, all answered in another.
    const ids = [...new Set(Array.from({ length: 900 }, () => Math.floor(Math.random() * 65536)))].slice(0, 600);
    for (const id of ids) {
      const q = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'known.example' }] });
      upstream.sendExpecting(q, '127.0.0.1', resolver.port, listener, '127.0.0.1', pod.port, id ^ 0xffff, q.length - 12, 1232);
    }
    // The expectations are made as the queries leave; the resolver (a dgram socket with the default
    // buffer) need not read all 600 of them: its first tells the upstream socket's port.
    await until('a query at the resolver', () => resolver.inbox.length > 0, 2000, 10);
    const to = resolver.inbox[0]!.port;
    const shuffled = [...ids].sort(() => Math.random() - 0.5);
    const dropped = new Set(shuffled.slice(0, 150));
    for (const id of dropped) upstream.unexpect(id);
    const answerOrder = [...ids].sort(() => Math.random() - 0.5);
    for (let i = 0; i < answerOrder.length; i += 50) {
      for (const id of answerOrder.slice(i, i + 50)) resolver.sock.send(response({ id, name: 'known.example' }), to, '127.0.0.1');
      await until('these answers read', () => released.size >= Math.min(i + 50, ids.length), 2000, 10);
    }
    expect(released.size).toBe(ids.length);
    expect(ids.filter((id) => released.get(id) !== !dropped.has(id))).toEqual([]);
    await until('the released answers at the pod', () => pod.inbox.length === ids.length - dropped.size, 2000, 10);
    await settle();
    expect(pod.inbox.map((m) => m.msg.readUInt16BE(0) ^ 0xffff).sort()).toEqual(ids.filter((id) => !dropped.has(id)).sort());
  });

  it('refuses a memo that is not an AnswerMemo', () => {
    const fd = native().socketBind(4, 'udp', '127.0.0.1', 0);
    expect(() => new (native().UdpBatch)(fd, () => {}, undefined, {} as NativeAnswerMemo)).toThrow(/AnswerMemo/);
    native().fdClose(fd);
  });
});
