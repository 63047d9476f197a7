// The DNS proxy over real sockets on loopback: pods are dgram/net clients, the
// resolvers are small dns-packet servers in this file, and the datapath's NAT
// table, the endpoint policies and "learn" are plain maps and recorders.
// Every process gets its own random 127.x.y.z addresses, so parallel runs do
// not collide.
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { native, type NativeAnswerMemo } from '../native/index.js';
import type { Learned } from './message.js';
import { monoNowMs } from './clock.js';
import { DnsProxy, type ClientPolicy, type NatInfo, type ProxyDeps, type ProxyObserver, type UdpSockets } from './proxy.js';

const UDP = 17;
const TCP = 6;
const RD = dnsPacket.RECURSION_DESIRED;
const RA = dnsPacket.RECURSION_AVAILABLE;
const WAIT_MS = 5_000;

type Peer = { address: string; port: number };

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of cleanups.splice(0).reverse()) await c();
});

const loopback = (): string => `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;

async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A queue of things that arrive, and promises of the next one. */
class Inbox<T> {
  readonly #items: T[] = [];
  readonly #waiters: Array<(t: T) => void> = [];
  count = 0;
  push(t: T): void {
    this.count++;
    const w = this.#waiters.shift();
    if (w) w(t);
    else this.#items.push(t);
  }
  next(what = 'a message'): Promise<T> {
    const t = this.#items.shift();
    if (t !== undefined) return Promise.resolve(t);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), WAIT_MS);
      this.#waiters.push((x) => {
        clearTimeout(timer);
        resolve(x);
      });
    });
  }
  get pending(): number {
    return this.#items.length;
  }
}

function frame(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  return Buffer.concat([len, msg]);
}

/** Splits a TCP byte stream into DNS messages. */
function unframe(sock: net.Socket, onMessage: (m: Buffer) => void): void {
  let buf = Buffer.alloc(0);
  sock.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      onMessage(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      buf = buf.subarray(2 + buf.readUInt16BE(0));
    }
  });
}

function query(name: string, id: number, type: dnsPacket.RecordType = 'A'): Buffer {
  return dnsPacket.encode({ id, type: 'query', flags: RD, questions: [{ name, type, class: 'IN' }] });
}

function answer(q: dnsPacket.DecodedPacket, answers: dnsPacket.Answer[], opts: { id?: number; rcode?: number; name?: string; type?: dnsPacket.RecordType } = {}): Buffer {
  const question = q.questions![0]!;
  return dnsPacket.encode({
    id: opts.id ?? q.id!,
    type: 'response',
    flags: RD | RA | (opts.rcode ?? 0),
    questions: [{ name: opts.name ?? question.name, type: opts.type ?? question.type, class: 'IN' }],
    answers,
  });
}

// ---------------------------------------------------------------- resolvers

interface Received {
  id: number;
  packet: dnsPacket.DecodedPacket;
  via: 'udp' | 'tcp';
  from: Peer;
  /** Answers over the transport the query came on. */
  reply(msg: Buffer): void;
}

/** A resolver on a loopback address, UDP and TCP on one port. */
class FakeResolver {
  readonly received = new Inbox<Received>();
  /** name → answer records; anything else gets NXDOMAIN. */
  readonly zone = new Map<string, dnsPacket.Answer[]>();
  /** Queries for these names are held: the test answers them through received. */
  readonly hold = new Set<string>();
  tcpConnections = 0;
  readonly #tcpSockets = new Set<net.Socket>();

  private constructor(
    readonly address: string,
    readonly port: number,
    readonly udp: dgram.Socket,
    readonly tcp: net.Server,
  ) {
    udp.on('message', (msg, rinfo) => this.#onQuery(msg, 'udp', rinfo, (m) => udp.send(m, rinfo.port, rinfo.address)));
    tcp.on('connection', (c) => {
      this.tcpConnections++;
      this.#tcpSockets.add(c);
      c.on('error', () => c.destroy());
      c.on('close', () => this.#tcpSockets.delete(c));
      unframe(c, (msg) => this.#onQuery(msg, 'tcp', { address: c.remoteAddress!, port: c.remotePort! }, (m) => void (c.writable && c.write(frame(m)))));
    });
  }

  /** On `port` (all resolvers of one proxy share the port it forwards to), or a free one. */
  static async start(address: string, port = 0): Promise<FakeResolver> {
    const udp = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, address, () => resolve());
    });
    const bound = udp.address().port;
    const tcp = net.createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(bound, address, () => resolve());
      });
    } catch (err) {
      udp.close();
      throw err;
    }
    const r = new FakeResolver(address, bound, udp, tcp);
    cleanups.push(() => r.close());
    return r;
  }

  #onQuery(msg: Buffer, via: 'udp' | 'tcp', from: Peer, reply: (m: Buffer) => void): void {
    let packet: dnsPacket.DecodedPacket;
    try {
      packet = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const name = packet.questions?.[0]?.name.toLowerCase() ?? '';
    this.received.push({ id: packet.id!, packet, via, from, reply });
    if (this.hold.has(name)) return;
    const records = this.zone.get(name);
    reply(answer(packet, records ?? [], { rcode: records ? 0 : 3 }));
  }

  /** Sends from this resolver's own address and port. */
  send(msg: Buffer, to: Peer): void {
    this.udp.send(msg, to.port, to.address);
  }

  async close(): Promise<void> {
    for (const c of this.#tcpSockets) c.destroy();
    this.udp.close();
    await new Promise((r) => this.tcp.close(r));
  }
}

// ---------------------------------------------------------------- the proxy

interface Harness {
  proxy: DnsProxy;
  address: string;
  port: number;
  trusted: FakeResolver;
  trusted2: FakeResolver;
  rogue: FakeResolver;
  /** `${protocol}/${ip}/${port}` (or `/*` for any port) → where the pod sent it. */
  nat: Map<string, NatInfo>;
  natCalls: Array<[number, string, number]>;
  clients: Map<number, ClientPolicy>;
  rules: Map<string, number[]>;
  rulesForCalls: string[];
  learned: Learned[];
  /** Runs inside learn, before it records; `deferred`: the proxy holds the answer for flushLearned. */
  onLearn: (l: Learned, deferred: boolean) => void;
  errors: string[];
}

const POD = 10;
const MATCHED_ONLY_POD = 11;
const OTHER_POD = 12;

/** Binding a random address and port can collide with another process: try a few. */
async function retry<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 5) throw err;
    }
  }
}

/** The agent's batched UDP sockets (native/udpbatch.cc), as src/agent/proxy-host.ts makes them. */
const nativeBatch = (): UdpSockets => ({
  open: (fd, onBatch, onSendFailed, memo) => new (native().UdpBatch)(fd, onBatch, onSendFailed, memo as NativeAnswerMemo | undefined),
  bind: (family) => native().socketBind(family, 'udp', family === 6 ? '::' : '0.0.0.0', 0),
});

async function startProxy(untrusted: ProxyDeps['untrusted'] = 'refuse', extra: Pick<ProxyDeps, 'limits' | 'upstreamTimeoutMs' | 'podSource' | 'trustedBackend' | 'observer' | 'batch' | 'flushLearned' | 'answerMemo'> = {}): Promise<Harness> {
  const trusted = await retry(() => FakeResolver.start(loopback()));
  const trusted2 = await retry(() => FakeResolver.start(loopback(), trusted.port));
  const rogue = await retry(() => FakeResolver.start(loopback(), trusted.port));
  // One object: the deps below read onLearn and the maps from it as tests change them.
  const h = {
    trusted,
    trusted2,
    rogue,
    nat: new Map(),
    natCalls: [],
    clients: new Map([
      [POD, { pod: 'ci/builder', dns: 'AllowAll', rules: [7] }],
      [MATCHED_ONLY_POD, { pod: 'ci/locked', dns: 'MatchedOnly', rules: [7] }],
      [OTHER_POD, { pod: 'ci/other', dns: 'AllowAll', rules: [7] }],
    ]),
    rules: new Map([
      ['api.github.com', [7]],
      ['other.github.com', [8]],
    ]),
    rulesForCalls: [],
    learned: [],
    onLearn: () => {},
    errors: [] as string[],
  } satisfies Omit<Harness, 'proxy' | 'address' | 'port'> as Omit<Harness, 'proxy' | 'address' | 'port'>;
  const log = pino({ level: 'error' }, { write: (line: string) => void h.errors.push(line) });
  const deps: ProxyDeps = {
    nat: (protocol, ip, port) => {
      h.natCalls.push([protocol, ip, port]);
      return h.nat.get(`${protocol}/${ip}/${port}`) ?? h.nat.get(`${protocol}/${ip}/*`);
    },
    client: (ifindex) => h.clients.get(ifindex),
    rulesFor: (name) => {
      h.rulesForCalls.push(name);
      return h.rules.get(name) ?? [];
    },
    learn: (l, deferred) => {
      h.onLearn(l, deferred);
      h.learned.push(l);
    },
    trusted: [trusted.address, trusted2.address],
    untrusted,
    upstreamPort: trusted.port,
    ...extra,
  };
  for (let attempt = 0; ; attempt++) {
    const proxy = new DnsProxy(deps, log);
    const address = loopback();
    const port = randomInt(20_000, 60_000);
    try {
      // Batched sockets need a bound fd (the agent's bindFd); dgram binds its own.
      await proxy.start([address], port, extra.batch && ((family, type, a, p) => native().socketBind(family, type, a, p)));
      cleanups.push(() => proxy.close());
      return Object.assign(h, { proxy, address, port });
    } catch (err) {
      await proxy.close();
      if (attempt > 5) throw err;
    }
  }
}

// ---------------------------------------------------------------- pods

class UdpPod {
  readonly inbox = new Inbox<Buffer>();
  private constructor(readonly sock: dgram.Socket) {
    sock.on('message', (m) => this.inbox.push(m));
  }
  static async open(h: Harness, daddr: string | undefined, ifindex = POD, address = '127.0.0.1'): Promise<UdpPod> {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, address, r));
    cleanups.push(() => sock.close());
    const pod = new UdpPod(sock);
    if (daddr) h.nat.set(`${UDP}/${address}/${pod.port}`, { daddr, ifindex });
    return pod;
  }
  get port(): number {
    return this.sock.address().port;
  }
  send(h: Harness, msg: Buffer): void {
    this.sock.send(msg, h.port, h.address);
  }
  async ask(h: Harness, msg: Buffer): Promise<dnsPacket.DecodedPacket> {
    this.send(h, msg);
    return dnsPacket.decode(await this.inbox.next('the answer'));
  }
}

class TcpPod {
  readonly inbox = new Inbox<Buffer>();
  readonly closed: Promise<void>;
  private constructor(
    readonly sock: net.Socket,
    readonly address: string,
  ) {
    unframe(sock, (m) => this.inbox.push(Buffer.from(m)));
    sock.on('error', () => {});
    this.closed = new Promise((r) => sock.once('close', () => r()));
  }
  /** From its own loopback address, so its NAT entry can exist before the connection does. */
  static async open(h: Harness, daddr: string | undefined, ifindex = POD): Promise<TcpPod> {
    const address = loopback();
    if (daddr) h.nat.set(`${TCP}/${address}/*`, { daddr, ifindex });
    const sock = net.connect({ host: h.address, port: h.port, localAddress: address });
    cleanups.push(() => sock.destroy());
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    return new TcpPod(sock, address);
  }
  send(msg: Buffer): void {
    this.sock.write(frame(msg));
  }
  async ask(msg: Buffer): Promise<dnsPacket.DecodedPacket> {
    this.send(msg);
    return dnsPacket.decode(await this.inbox.next('the answer'));
  }
}

const GITHUB_A: dnsPacket.Answer = { name: 'api.github.com', type: 'A', ttl: 60, data: '140.82.112.5' };

// ---------------------------------------------------------------- tests

describe('DnsProxy over UDP', () => {
  it('forwards to the resolver the pod asked, releases the answer under the pod\'s id and learns it', async () => {
    const h = await startProxy();
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const pod = await UdpPod.open(h, h.trusted.address);

    const res = await pod.ask(h, query('API.GitHub.com', 0x1234));
    expect(res).toMatchObject({ id: 0x1234, type: 'response', rcode: 'NOERROR' });
    expect(res.questions).toEqual([{ name: 'API.GitHub.com', type: 'A', class: 'IN' }]);
    expect(res.answers).toMatchObject([{ name: 'api.github.com', type: 'A', data: '140.82.112.5' }]);

    const upstream = await h.trusted.received.next();
    expect(upstream.via).toBe('udp');
    expect(upstream.packet.questions).toEqual([{ name: 'API.GitHub.com', type: 'A', class: 'IN' }]);
    expect(h.natCalls).toEqual([[UDP, '127.0.0.1', pod.port]]);
    expect(h.learned).toEqual([{ names: ['api.github.com'], addresses: [{ ip: '140.82.112.5', ttl: 60 }] }]);
    expect(h.proxy.stats).toMatchObject({ queries: 1, forwarded: 1, answered: 1, learnedAnswers: 1, refused: 0, servfail: 0, malformed: 0, spoofed: 0 });
    expect(h.errors).toEqual([]);
  });

  it('learns a UDP answer too big for the pod\'s path, then sends it truncated (TC) so the pod retries over TCP', async () => {
    const h = await startProxy();
    const many = Array.from({ length: 100 }, (_, i): dnsPacket.Answer => ({ name: 'big.example', type: 'A', ttl: 60, data: `192.0.2.${i + 1}` }));
    h.trusted.zone.set('big.example', many);
    const pod = await UdpPod.open(h, h.trusted.address);
    const res = await pod.ask(h, query('big.example', 7));
    expect(res).toMatchObject({ id: 7, rcode: 'NOERROR' });
    expect((res.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE).toBe(dnsPacket.TRUNCATED_RESPONSE);
    expect(res.answers).toEqual([]);
    expect(res.questions).toEqual([{ name: 'big.example', type: 'A', class: 'IN' }]);
    expect(h.learned[0]?.addresses).toHaveLength(100);
    expect(h.proxy.stats).toMatchObject({ answered: 1, truncated: 1 });
  });

  it('learns before it releases the answer to the pod', async () => {
    const h = await startProxy();
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const pod = await UdpPod.open(h, h.trusted.address);
    const order: string[] = [];
    const send = dgram.Socket.prototype.send;
    vi.spyOn(dgram.Socket.prototype, 'send').mockImplementation(function (this: dgram.Socket, ...args: unknown[]) {
      if (args[1] === pod.port) order.push('reply sent');
      return (send as (...a: unknown[]) => void).apply(this, args);
    });
    h.onLearn = () => order.push('learned');

    await pod.ask(h, query('api.github.com', 1));
    expect(order).toEqual(['learned', 'reply sent']);
  });

  it('answers SERVFAIL, under the pod\'s id and question, when programming fails', async () => {
    const h = await startProxy();
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    h.onLearn = () => {
      throw new Error('sluice_fqdn_v1 is full');
    };
    const pod = await UdpPod.open(h, h.trusted.address);

    const res = await pod.ask(h, query('api.github.com', 0x0bad));
    expect(res).toMatchObject({ id: 0x0bad, type: 'response', rcode: 'SERVFAIL', flag_rd: true });
    expect(res.questions).toEqual([{ name: 'api.github.com', type: 'A', class: 'IN' }]);
    expect(res.answers).toEqual([]);
    expect(h.proxy.stats).toMatchObject({ servfail: 1, answered: 0, learnedAnswers: 0 });
    expect(h.errors.join('')).toContain('could not program');
  });

  it('echoes the question byte for byte in its own answers, even one that does not decode to text', async () => {
    const h = await startProxy();
    h.onLearn = () => {
      throw new Error('map full');
    };
    const name = Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0xff), Buffer.from([3]), Buffer.from('com'), Buffer.from([0])]);
    const raw = (id: number) => Buffer.concat([Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), name, Buffer.from([0, 1, 0, 1])]);
    h.trusted.hold.add(dnsPacket.decode(raw(0)).questions![0]!.name.toLowerCase());

    const trustedPod = await UdpPod.open(h, h.trusted.address);
    trustedPod.send(h, raw(0x5e5e)); // SERVFAIL: learning fails
    // The resolver answers with the question as it came (dns-packet cannot encode this name back), plus one A record.
    const fwd = await h.trusted.received.next();
    const header = Buffer.from([fwd.id >> 8, fwd.id & 0xff, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    const a = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    fwd.reply(Buffer.concat([header, raw(0).subarray(12), a]));
    const servfail = await trustedPod.inbox.next();
    expect(servfail.subarray(12)).toEqual(raw(0).subarray(12));
    expect(dnsPacket.decode(servfail)).toMatchObject({ id: 0x5e5e, rcode: 'SERVFAIL' });

    const roguePod = await UdpPod.open(h, h.rogue.address);
    roguePod.send(h, raw(0x5f5f)); // REFUSED: untrusted server
    const refused = await roguePod.inbox.next();
    expect(refused.subarray(12)).toEqual(raw(0).subarray(12));
    expect(dnsPacket.decode(refused)).toMatchObject({ id: 0x5f5f, rcode: 'REFUSED' });
  });

  it('releases an answer that teaches nothing without calling learn', async () => {
    const h = await startProxy();
    h.onLearn = () => {
      throw new Error('learn must not be called');
    };
    const pod = await UdpPod.open(h, h.trusted.address);
    const res = await pod.ask(h, query('nowhere.example', 5));
    expect(res).toMatchObject({ id: 5, rcode: 'NXDOMAIN' });
    expect(h.proxy.stats).toMatchObject({ answered: 1, servfail: 0, learnedAnswers: 0 });
  });

  it('refuses a query addressed to an untrusted server (refuse mode), without forwarding it', async () => {
    const h = await startProxy('refuse');
    const pod = await UdpPod.open(h, h.rogue.address);
    const res = await pod.ask(h, query('api.github.com', 77, 'AAAA'));
    expect(res).toMatchObject({ id: 77, type: 'response', rcode: 'REFUSED' });
    expect(res.questions).toEqual([{ name: 'api.github.com', type: 'AAAA', class: 'IN' }]);
    expect(h.proxy.stats).toMatchObject({ queries: 1, refused: 1, forwarded: 0 });
    expect(h.rogue.received.count).toBe(0);
  });

  it('forwards a query to a backend of a trusted Service address (trustedBackend), and still refuses other servers', async () => {
    let backend = '';
    const h = await startProxy('refuse', { trustedBackend: (ip) => ip === backend });
    backend = h.rogue.address; // the pod's query reached the datapath already translated to this backend
    h.rogue.zone.set('api.github.com', [GITHUB_A]);
    const pod = await UdpPod.open(h, h.rogue.address);
    expect(await pod.ask(h, query('api.github.com', 7))).toMatchObject({ id: 7, rcode: 'NOERROR' });
    expect(h.rogue.received.count).toBe(1);
    backend = '';
    expect(await pod.ask(h, query('api.github.com', 8))).toMatchObject({ id: 8, rcode: 'REFUSED' });
    expect(h.rogue.received.count).toBe(1);
  });

  it('sends a query addressed to an untrusted server to the first trusted one (redirect mode)', async () => {
    const h = await startProxy('redirect');
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    h.rogue.zone.set('api.github.com', [{ ...GITHUB_A, data: '203.0.113.66' }]);
    const pod = await UdpPod.open(h, h.rogue.address);

    const res = await pod.ask(h, query('api.github.com', 78));
    expect(res.answers).toMatchObject([{ data: '140.82.112.5' }]);
    expect(h.trusted.received.count).toBe(1);
    expect(h.proxy.stats).toMatchObject({ forwarded: 1, refused: 0 });
    expect(h.rogue.received.count).toBe(0);
    expect(h.learned.flatMap((l) => l.addresses.map((x) => x.ip))).toEqual(['140.82.112.5']);
  });

  it('keeps a query addressed to another trusted server there (redirect mode)', async () => {
    const h = await startProxy('redirect');
    h.trusted2.zone.set('api.github.com', [GITHUB_A]);
    const pod = await UdpPod.open(h, h.trusted2.address);
    const res = await pod.ask(h, query('api.github.com', 79));
    expect(res.answers).toMatchObject([{ data: '140.82.112.5' }]);
    expect(h.trusted2.received.count).toBe(1);
    expect(h.trusted.received.count).toBe(0);
  });

  it('refuses, for a MatchedOnly pod, names none of its rules match', async () => {
    const h = await startProxy();
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const pod = await UdpPod.open(h, h.trusted.address, MATCHED_ONLY_POD);

    expect(await pod.ask(h, query('evil.example', 1))).toMatchObject({ id: 1, rcode: 'REFUSED' });
    expect(await pod.ask(h, query('other.github.com', 2))).toMatchObject({ id: 2, rcode: 'REFUSED' }); // another pod's rule
    const ok = await pod.ask(h, query('API.GitHub.com.', 3));
    expect(ok).toMatchObject({ id: 3, rcode: 'NOERROR' });
    expect(ok.answers).toMatchObject([{ data: '140.82.112.5' }]);
    expect(h.rulesForCalls).toEqual(['evil.example', 'other.github.com', 'api.github.com']);
    expect(h.proxy.stats).toMatchObject({ queries: 3, refused: 2, forwarded: 1 });
    expect(h.trusted.received.count).toBe(1);
  });

  it('forwards any name for an AllowAll pod', async () => {
    const h = await startProxy();
    const pod = await UdpPod.open(h, h.trusted.address);
    expect(await pod.ask(h, query('evil.example', 1))).toMatchObject({ id: 1, rcode: 'NXDOMAIN' });
    expect(h.rulesForCalls).toEqual([]);
  });

  it('refuses a pod whose endpoint it does not know', async () => {
    const h = await startProxy();
    const pod = await UdpPod.open(h, h.trusted.address, 4242);
    expect(await pod.ask(h, query('api.github.com', 9))).toMatchObject({ id: 9, rcode: 'REFUSED' });
    expect(h.trusted.received.count).toBe(0);
  });

  it('drops, without an answer, a query with no NAT entry', async () => {
    const h = await startProxy();
    const pod = await UdpPod.open(h, undefined);
    pod.send(h, query('api.github.com', 1));
    await until('the unattributed query', () => h.proxy.stats.unattributed === 1);
    h.nat.set(`${UDP}/127.0.0.1/${pod.port}`, { daddr: h.trusted.address, ifindex: POD });
    // Loopback keeps order: had the first query been answered, that answer would come first.
    expect(await pod.ask(h, query('api.github.com', 2))).toMatchObject({ id: 2 });
    expect(pod.inbox.pending).toBe(0);
    expect(h.proxy.stats).toMatchObject({ queries: 2, unattributed: 1, forwarded: 1 });
  });

  it('drops and counts malformed queries and answers the next good one', async () => {
    const h = await startProxy();
    const pod = await UdpPod.open(h, h.trusted.address);
    pod.send(h, Buffer.from('not dns'));
    pod.send(h, query('api.github.com', 1).subarray(0, 20));
    pod.send(h, answer(dnsPacket.decode(query('api.github.com', 1)), [GITHUB_A])); // QR set
    await until('three malformed packets', () => h.proxy.stats.malformed === 3);
    expect(await pod.ask(h, query('api.github.com', 2))).toMatchObject({ id: 2 });
    expect(pod.inbox.pending).toBe(0);
    expect(h.errors).toEqual([]);
  });

  it('ignores and counts spoofed answers; the real one still gets through', async () => {
    const h = await startProxy();
    h.trusted.hold.add('api.github.com');
    const pod = await UdpPod.open(h, h.trusted.address);
    pod.send(h, query('api.github.com', 0x4444));
    const fwd = await h.trusted.received.next('the forwarded query');
    const evil: dnsPacket.Answer = { ...GITHUB_A, data: '203.0.113.66' };
    const spoof = answer(fwd.packet, [evil]);

    // From another address, right port and id.
    h.rogue.send(spoof, fwd.from);
    // From the resolver's address, another port.
    const sidePort = dgram.createSocket('udp4');
    await new Promise<void>((r) => sidePort.bind(0, h.trusted.address, r));
    cleanups.push(() => sidePort.close());
    sidePort.send(spoof, fwd.from.port, fwd.from.address);
    // From the resolver itself: wrong id, wrong name, wrong type.
    h.trusted.send(answer(fwd.packet, [evil], { id: fwd.id ^ 0x8000 }), fwd.from);
    h.trusted.send(answer(fwd.packet, [{ ...evil, name: 'evil.example' }], { name: 'evil.example' }), fwd.from);
    h.trusted.send(answer(fwd.packet, [{ ...evil, type: 'AAAA', data: '2001:db8::66' }], { type: 'AAAA' }), fwd.from);
    // Right everything but not parseable, or not an answer.
    h.trusted.send(spoof.subarray(0, spoof.length - 3), fwd.from);
    const notAnswer = Buffer.from(query('api.github.com', 0));
    notAnswer.writeUInt16BE(fwd.id, 0);
    h.trusted.send(notAnswer, fwd.from);
    await until('5 spoofed and 2 malformed', () => h.proxy.stats.spoofed === 5 && h.proxy.stats.malformed === 2);
    expect(pod.inbox.pending).toBe(0);
    expect(h.learned).toEqual([]);

    fwd.reply(answer(fwd.packet, [GITHUB_A]));
    const res = dnsPacket.decode(await pod.inbox.next('the real answer'));
    expect(res).toMatchObject({ id: 0x4444 });
    expect(res.answers).toMatchObject([{ data: '140.82.112.5' }]);
    expect(h.learned).toEqual([{ names: ['api.github.com'], addresses: [{ ip: '140.82.112.5', ttl: 60 }] }]);

    // A second copy of the real answer after it was released is spoofed too.
    fwd.reply(answer(fwd.packet, [GITHUB_A]));
    await until('the late duplicate', () => h.proxy.stats.spoofed === 6);
    expect(h.proxy.stats).toMatchObject({ answered: 1, learnedAnswers: 1 });
    expect(h.errors).toEqual([]);
  });

  it('serves IPv6: pods, proxy and resolver on ::1, AAAA learned', async () => {
    const resolver = await retry(() => FakeResolver.start('::1'));
    resolver.zone.set('v6.example', [{ name: 'v6.example', type: 'AAAA', ttl: 30, data: '2001:db8::5' }]);
    const learned: Learned[] = [];
    const nat = new Map<number, NatInfo>();
    const proxy = new DnsProxy(
      {
        nat: (protocol, ip, port) => (protocol === UDP && ip === '::1' ? nat.get(port) : undefined),
        client: () => ({ pod: 'ci/v6', dns: 'AllowAll', rules: [] }),
        rulesFor: () => [],
        learn: (l) => void learned.push(l),
        trusted: ['::1'],
        untrusted: 'refuse',
        upstreamPort: resolver.port,
      },
      pino({ level: 'silent' }),
    );
    const udp = dgram.createSocket('udp6');
    await new Promise<void>((r) => udp.bind(0, '::1', r));
    const port = udp.address().port; // a port free on ::1 for the proxy, checked by binding it
    udp.close();
    await proxy.start(['::1'], port);
    cleanups.push(() => proxy.close());
    const pod = dgram.createSocket('udp6');
    await new Promise<void>((r) => pod.bind(0, '::1', r));
    cleanups.push(() => pod.close());
    nat.set(pod.address().port, { daddr: '::1', ifindex: 1 });
    const inbox = new Inbox<Buffer>();
    pod.on('message', (m) => inbox.push(m));
    pod.send(query('v6.example', 66, 'AAAA'), port, '::1');
    const res = dnsPacket.decode(await inbox.next());
    expect(res).toMatchObject({ id: 66, rcode: 'NOERROR' });
    expect(learned).toEqual([{ names: ['v6.example'], addresses: [{ ip: '2001:db8::5', ttl: 30 }] }]);
  });
});

describe('DnsProxy on batched sockets (the agent\'s native UdpBatch)', () => {
  it('forwards, learns and releases under the pod\'s id, many queries at once, each answer to its own pod', async () => {
    const h = await startProxy('refuse', { batch: nativeBatch() });
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    h.trusted.zone.set('other.github.com', [{ ...GITHUB_A, name: 'other.github.com', data: '140.82.112.6' }]);
    const pods = await Promise.all([0, 1, 2, 3].map(() => UdpPod.open(h, h.trusted.address)));
    // A burst: the listener reads several in one batch, the pool their answers too.
    for (const [i, pod] of pods.entries()) for (let k = 0; k < 10; k++) pod.send(h, query(i % 2 ? 'other.github.com' : 'api.github.com', 100 * i + k));
    for (const [i, pod] of pods.entries()) {
      const ids = new Set<number>();
      for (let k = 0; k < 10; k++) {
        const res = dnsPacket.decode(await pod.inbox.next('an answer'));
        expect(res.answers).toMatchObject([{ data: i % 2 ? '140.82.112.6' : '140.82.112.5' }]);
        ids.add(res.id!);
      }
      expect(ids).toEqual(new Set(Array.from({ length: 10 }, (_, k) => 100 * i + k)));
    }
    expect(h.learned).toHaveLength(40);
    expect(h.proxy.stats).toMatchObject({ queries: 40, forwarded: 40, answered: 40, spoofed: 0, errors: 0, sendFailed: 0 });
    expect(h.errors).toEqual([]);
  });

  it('checks an answer\'s source (reported as a number) against the upstream asked: another address is spoofed', async () => {
    const h = await startProxy('refuse', { batch: nativeBatch() });
    h.trusted.hold.add('api.github.com');
    const pod = await UdpPod.open(h, h.trusted.address);
    pod.send(h, query('api.github.com', 0x4242));
    const fwd = await h.trusted.received.next();
    h.rogue.send(answer(fwd.packet, [{ ...GITHUB_A, data: '203.0.113.66' }]), fwd.from);
    await until('the spoofed answer', () => h.proxy.stats.spoofed === 1);
    expect(h.learned).toEqual([]);
    fwd.reply(answer(fwd.packet, [GITHUB_A]));
    expect(dnsPacket.decode(await pod.inbox.next())).toMatchObject({ id: 0x4242, answers: [{ data: '140.82.112.5' }] });
    expect(h.learned).toHaveLength(1);
  });

  it('refuses from the batch as from dgram, to the address and port the query came from', async () => {
    const h = await startProxy('refuse', { batch: nativeBatch() });
    const pod = await UdpPod.open(h, h.rogue.address);
    expect(await pod.ask(h, query('api.github.com', 7))).toMatchObject({ id: 7, rcode: 'REFUSED' });
    expect(h.natCalls).toEqual([[UDP, '127.0.0.1', pod.port]]);
  });
});

describe('DnsProxy learning a batch of answers at once (flushLearned)', () => {
  /** nativeBatch, with every send to `port` logged in `order`. */
  const loggedBatch = (order: string[], port: () => number): UdpSockets => {
    const batch = nativeBatch();
    return {
      ...batch,
      open: (fd, onBatch, onSendFailed) => {
        const s = batch.open(fd, onBatch, onSendFailed);
        return {
          send: (buf, address, p) => {
            if (p === port()) order.push(`send ${dnsPacket.decode(buf).id}`);
            return s.send(buf, address, p);
          },
          pause: () => s.pause(),
          close: () => s.close(),
        };
      },
    };
  };
  const NAMES = ['a.example', 'b.example', 'c.example'];

  /**
   * A pod with three queries whose answers the resolver sends back to back:
   * they reach the pod's one upstream socket together and are read as one batch.
   */
  async function batchOfThree(flushLearned: (h: Harness) => ReturnType<NonNullable<ProxyDeps['flushLearned']>>) {
    const order: string[] = [];
    let pod: UdpPod | undefined;
    let h: Harness | undefined;
    h = await startProxy('refuse', {
      batch: loggedBatch(order, () => pod?.port ?? -1),
      podSource: { appliesTo: () => true, socket: (f, a) => native().socketBind(f, 'udp', a, 0) },
      flushLearned: () => {
        order.push(`flush ${h!.learned.length}`);
        return flushLearned(h!);
      },
    });
    h.onLearn = (l, deferred) => order.push(`learn ${l.names[0]}${deferred ? ' deferred' : ''}`);
    for (const [i, name] of NAMES.entries()) {
      h.trusted.zone.set(name, [{ name, type: 'A', ttl: 60, data: `192.0.2.${i + 1}` }]);
      h.trusted.hold.add(name);
    }
    pod = await UdpPod.open(h, h.trusted.address, POD, loopback());
    for (const [i, name] of NAMES.entries()) pod.send(h, query(name, i + 1));
    const held = [await h.trusted.received.next(), await h.trusted.received.next(), await h.trusted.received.next()];
    for (const fwd of held) fwd.reply(answer(fwd.packet, h.trusted.zone.get(fwd.packet.questions![0]!.name)!));
    const answers = new Map<number, dnsPacket.DecodedPacket>();
    for (let i = 0; i < 3; i++) {
      const res = dnsPacket.decode(await pod.inbox.next('an answer'));
      answers.set(res.id!, res);
    }
    return { h, order, answers };
  }

  it('holds every answer of the batch until flushLearned has programmed what they teach, then sends each', async () => {
    const { h, order, answers } = await batchOfThree(() => undefined);
    // The three answers were read together: learned (deferred), one flush, then sent.
    expect(order.slice(0, 3).sort()).toEqual(['learn a.example deferred', 'learn b.example deferred', 'learn c.example deferred']);
    expect(order.slice(3)).toEqual(['flush 3', ...order.slice(4)]);
    expect(order.slice(4).sort()).toEqual(['send 1', 'send 2', 'send 3']);
    for (const [i, name] of NAMES.entries()) expect(answers.get(i + 1)).toMatchObject({ rcode: 'NOERROR', answers: [{ name, data: `192.0.2.${i + 1}` }] });
    expect(h.proxy.stats).toMatchObject({ answered: 3, learnedAnswers: 3, servfail: 0, errors: 0 });
  });

  it('answers SERVFAIL for just the answers flushLearned could not program, the others of the batch as usual', async () => {
    const { h, answers } = await batchOfThree((harness) => new Map([[harness.learned.find((l) => l.names[0] === 'b.example')!, new Error('sluice_fqdn_v1 is full')]]));
    expect(answers.get(1)).toMatchObject({ rcode: 'NOERROR', answers: [{ data: '192.0.2.1' }] });
    expect(answers.get(2)).toMatchObject({ rcode: 'SERVFAIL', answers: [], questions: [{ name: 'b.example' }] });
    expect(answers.get(3)).toMatchObject({ rcode: 'NOERROR', answers: [{ data: '192.0.2.3' }] });
    expect(h.proxy.stats).toMatchObject({ answered: 2, learnedAnswers: 2, servfail: 1, errors: 0 });
    expect(h.errors.join('')).toContain('could not program');
  });

  it('answers SERVFAIL for the whole batch when flushLearned throws (nothing known programmed)', async () => {
    const { h, answers } = await batchOfThree(() => {
      throw new Error('the flush broke');
    });
    for (const id of [1, 2, 3]) expect(answers.get(id)).toMatchObject({ rcode: 'SERVFAIL' });
    expect(h.proxy.stats).toMatchObject({ answered: 0, learnedAnswers: 0, servfail: 3, errors: 0 });
  });
});

describe('DnsProxy releasing repeats of a learned answer (MEMO)', () => {
  /**
   * A proxy on batched sockets with a real memo; `vouch` says whether the
   * windows may be given (then unbounded); `stale`: they are passed, and the
   * allows programmed for ever (every repeat a refresh).
   */
  async function withMemo(vouch: () => boolean = () => true, opts: { stale?: boolean; flushLearned?: ProxyDeps['flushLearned'] } = {}) {
    const memo = new (native().AnswerMemo)(64, 0, 0);
    const windowsAsked: string[][] = [];
    const h = await startProxy('refuse', {
      batch: nativeBatch(),
      ...(opts.flushLearned ? { flushLearned: opts.flushLearned } : {}),
      answerMemo: {
        memo,
        windows: (l, into) => {
          windowsAsked.push(l.names);
          into.fill(Infinity, 0, 3 * l.addresses.length);
          for (let k = 0; k < l.addresses.length; k++) {
            into[3 * k] = -Infinity;
            if (opts.stale) into[3 * k + 1] = -Infinity;
          }
          return vouch();
        },
      },
    });
    h.trusted.zone.set('api.github.com', [{ name: 'api.github.com', type: 'A', ttl: 60, data: '192.0.2.10' }]);
    const pod = await UdpPod.open(h, h.trusted.address);
    return { h, memo, pod, windowsAsked };
  }

  it('learns an answer once, then releases its repeats as they come (the pod\'s id in place), counted as unchanged', async () => {
    const { h, pod, windowsAsked } = await withMemo();
    for (let id = 1; id <= 3; id++) {
      const res = await pod.ask(h, query('api.github.com', id));
      expect(res).toMatchObject({ id, rcode: 'NOERROR', answers: [{ name: 'api.github.com', data: '192.0.2.10' }] });
    }
    expect(h.learned.map((l) => l.names)).toEqual([['api.github.com']]);
    expect(windowsAsked).toEqual([['api.github.com']]);
    expect(h.proxy.stats).toMatchObject({ forwarded: 3, answered: 3, learnedAnswers: 3, unchanged: 2, spoofed: 0, errors: 0 });
    // The repeats went back from the upstream socket itself (RELEASE) and settled their queries: nothing in flight.
    expect(h.proxy.inflight()).toBe(0);
    expect([...h.proxy.podStats().values()].map((p) => p.inflight)).toEqual([0]);
  });

  it('learns every answer while nothing may be remembered, and any answer that differs', async () => {
    let vouch = false;
    const { h, pod, memo } = await withMemo(() => vouch);
    await pod.ask(h, query('api.github.com', 1));
    await pod.ask(h, query('api.github.com', 2));
    expect(h.learned).toHaveLength(2);
    vouch = true;
    await pod.ask(h, query('api.github.com', 3));
    await pod.ask(h, query('api.github.com', 4));
    expect(h.learned).toHaveLength(3);
    // Another address: other bytes, learned.
    h.trusted.zone.set('api.github.com', [{ name: 'api.github.com', type: 'A', ttl: 60, data: '192.0.2.11' }]);
    expect(await pod.ask(h, query('api.github.com', 5))).toMatchObject({ answers: [{ data: '192.0.2.11' }] });
    expect(h.learned.map((l) => l.addresses[0]!.ip)).toEqual(['192.0.2.10', '192.0.2.10', '192.0.2.10', '192.0.2.11']);
    // Forgotten (what the agent does when another answer moved the name's expiries): learned again.
    memo.forget('api.github.com');
    await pod.ask(h, query('api.github.com', 6));
    expect(h.learned).toHaveLength(5);
    expect(h.proxy.stats).toMatchObject({ answered: 6, unchanged: 1, errors: 0 });
  });

  it('sends a refresh to the pod from the upstream socket, then learns it without sending it again (REFRESH)', async () => {
    const { h, pod, memo } = await withMemo(() => true, { stale: true });
    for (let id = 1; id <= 3; id++) {
      expect(await pod.ask(h, query('api.github.com', id))).toMatchObject({ id, rcode: 'NOERROR', answers: [{ data: '192.0.2.10' }] });
    }
    // Each repeat learned (its expiries move) yet answered once: no second copy arrives.
    expect(h.learned).toHaveLength(3);
    expect(memo.refreshes).toBe(2);
    await pod.ask(h, query('api.github.com', 4));
    expect(pod.inbox.count).toBe(4);
    expect(h.proxy.stats).toMatchObject({ forwarded: 4, answered: 4, learnedAnswers: 4, releasedBeforeLearning: 3, unchanged: 0, servfail: 0, spoofed: 0, errors: 0 });
    expect(h.proxy.inflight()).toBe(0);
  });

  it('keeps a released refresh when its learning fails: no SERVFAIL after it, counted and logged', async () => {
    let fail = false;
    const { h, pod } = await withMemo(() => true, {
      stale: true,
      flushLearned: () => (fail ? new Map(h.learned.slice(-1).map((l) => [l, new Error('sluice_fqdn_v1 is full')])) : undefined),
    });
    await pod.ask(h, query('api.github.com', 1));
    fail = true;
    expect(await pod.ask(h, query('api.github.com', 2))).toMatchObject({ id: 2, rcode: 'NOERROR', answers: [{ data: '192.0.2.10' }] });
    await until('the refresh settled', () => h.proxy.inflight() === 0);
    // A third query proves the order: had a SERVFAIL followed the second answer, it would come first here.
    fail = false;
    expect(await pod.ask(h, query('api.github.com', 3))).toMatchObject({ id: 3, rcode: 'NOERROR' });
    expect(pod.inbox.count).toBe(3);
    expect(h.proxy.stats).toMatchObject({ releasedBeforeLearning: 2, refreshFailed: 1, servfail: 0, answered: 3 });
    expect(h.errors.join('')).toContain('already released');
  });

  it('learns before release a repeat whose allows have less than the grace left (not a refresh)', async () => {
    const memo = new (native().AnswerMemo)(64, 0, 60_000);
    const h = await startProxy('refuse', {
      batch: nativeBatch(),
      answerMemo: {
        memo,
        windows: (l, into) => {
          // Windows passed; the allows end within the minute of grace the memo asks for.
          for (let k = 0; k < l.addresses.length; k++) into.set([-Infinity, -Infinity, monoNowMs() + 1_000], 3 * k);
          return true;
        },
      },
    });
    h.trusted.zone.set('api.github.com', [{ name: 'api.github.com', type: 'A', ttl: 60, data: '192.0.2.10' }]);
    const pod = await UdpPod.open(h, h.trusted.address);
    const order: string[] = [];
    h.onLearn = () => order.push('learned');
    for (let id = 1; id <= 2; id++) {
      pod.send(h, query('api.github.com', id));
      await pod.inbox.next('the answer');
      order.push('answered');
    }
    expect(order).toEqual(['learned', 'answered', 'learned', 'answered']);
    expect(memo.refreshes).toBe(0);
    expect(h.proxy.stats).toMatchObject({ releasedBeforeLearning: 0, answered: 2 });
  });

  it('never releases a remembered answer for another question: one echoing the wrong question is spoofed', async () => {
    const { h, pod } = await withMemo();
    h.trusted.zone.set('other.github.com', [{ name: 'other.github.com', type: 'A', ttl: 60, data: '192.0.2.20' }]);
    await pod.ask(h, query('api.github.com', 1)); // remembered
    h.trusted.hold.add('other.github.com');
    pod.send(h, query('other.github.com', 2));
    let fwd = await h.trusted.received.next('the forwarded query');
    if (fwd.packet.questions![0]!.name === 'api.github.com') fwd = await h.trusted.received.next('the forwarded query'); // the first ask's
    expect(fwd.packet.questions![0]!.name).toBe('other.github.com');
    // The remembered answer's bytes under this query's id: a hit for the memo, not this query's answer.
    const wrong = answer({ ...fwd.packet, questions: [{ name: 'api.github.com', type: 'A', class: 'IN' }] }, h.trusted.zone.get('api.github.com')!);
    fwd.reply(wrong);
    await until('the wrong answer is dropped', () => h.proxy.stats.spoofed === 1);
    fwd.reply(answer(fwd.packet, h.trusted.zone.get('other.github.com')!));
    expect(dnsPacket.decode(await pod.inbox.next('the answer'))).toMatchObject({ id: 2, answers: [{ name: 'other.github.com', data: '192.0.2.20' }] });
    expect(h.proxy.stats).toMatchObject({ unchanged: 0, spoofed: 1 });
  });
});

describe('DnsProxy sending from the pod\'s own address (podSource)', () => {
  // The agent's sockets are transparent (any address); on loopback a plain
  // bound socket shows the same thing: which source the resolver sees.
  const boundSocket = (family: 4 | 6, address: string): number => native().socketBind(family, 'udp', address, 0);

  it('asks the resolver from the pod\'s address on one socket per pod, and the answer comes back through it', async () => {
    const made: string[] = [];
    const h = await startProxy('refuse', { podSource: { appliesTo: () => true, socket: (f, a) => (made.push(a), boundSocket(f, a)) } });
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const podAddr = loopback();
    const pod = await UdpPod.open(h, h.trusted.address, POD, podAddr);

    for (const id of [0x1111, 0x2222]) {
      const res = await pod.ask(h, query('api.github.com', id));
      expect(res).toMatchObject({ id, rcode: 'NOERROR' });
      expect(res.answers).toMatchObject([{ data: '140.82.112.5' }]);
    }
    const [first, second] = [await h.trusted.received.next(), await h.trusted.received.next()];
    expect(first!.from.address).toBe(podAddr);
    expect(second!.from).toEqual(first!.from); // the pod's one socket
    expect(made).toEqual([podAddr]);
    expect(h.proxy.podSocketAddresses()).toEqual([podAddr]);
    expect(h.proxy.stats).toMatchObject({ forwarded: 2, answered: 2, fromPod: 2, fromPodFailed: 0, spoofed: 0 });

    // The pod socket checks answers like the pool does: another address is spoofed.
    h.trusted.hold.add('api.github.com');
    pod.send(h, query('api.github.com', 0x3333));
    const fwd = await h.trusted.received.next();
    h.rogue.send(answer(fwd.packet, [{ ...GITHUB_A, data: '203.0.113.66' }]), fwd.from);
    await until('the spoofed answer', () => h.proxy.stats.spoofed === 1);
    fwd.reply(answer(fwd.packet, [GITHUB_A]));
    expect(dnsPacket.decode(await pod.inbox.next())).toMatchObject({ id: 0x3333 });

    // The pod gone: its socket goes with it.
    h.proxy.retainPods(new Set([OTHER_POD]));
    expect(h.proxy.podSocketAddresses()).toEqual([]);
    expect(h.errors).toEqual([]);
  });

  it('asks from the node for upstreams it does not apply to, and when the pod\'s socket cannot be made', async () => {
    let fail = false;
    const h = await startProxy('refuse', {
      podSource: {
        appliesTo: (u) => u === h.trusted.address,
        socket: (f, a) => {
          if (fail) throw new Error('EPERM: no IP_TRANSPARENT here');
          return boundSocket(f, a);
        },
      },
    });
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    h.trusted2.zone.set('api.github.com', [GITHUB_A]);

    // Not for this upstream: the node's pool.
    const podAddr = loopback();
    const toOther = await UdpPod.open(h, h.trusted2.address, POD, podAddr);
    expect(await toOther.ask(h, query('api.github.com', 1))).toMatchObject({ id: 1, rcode: 'NOERROR' });
    expect((await h.trusted2.received.next()).from.address).not.toBe(podAddr);
    expect(h.proxy.stats).toMatchObject({ fromPod: 0, fromPodFailed: 0 });

    // The socket cannot be made: counted, and the query still answered (from the node).
    fail = true;
    const pod = await UdpPod.open(h, h.trusted.address, OTHER_POD, loopback());
    expect(await pod.ask(h, query('api.github.com', 2))).toMatchObject({ id: 2, rcode: 'NOERROR' });
    expect(h.proxy.stats).toMatchObject({ fromPod: 0, fromPodFailed: 1, answered: 2 });
    expect(h.proxy.podSocketAddresses()).toEqual([]);
  });
});

describe('DnsProxy over TCP', () => {
  it('forwards a length-prefixed query and answers on the same connection', async () => {
    const h = await startProxy();
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const pod = await TcpPod.open(h, h.trusted.address);
    const res = await pod.ask(query('api.github.com', 0x7777));
    expect(res).toMatchObject({ id: 0x7777, rcode: 'NOERROR' });
    expect(res.answers).toMatchObject([{ data: '140.82.112.5' }]);
    expect((await h.trusted.received.next()).via).toBe('tcp');
    expect(h.natCalls).toEqual([[TCP, pod.address, pod.sock.localPort]]);
    expect(h.learned).toHaveLength(1);
  });

  it('answers two pipelined queries, whatever order the resolver answers in, over one upstream connection', async () => {
    const h = await startProxy();
    h.trusted.hold.add('one.example').add('two.example');
    const pod = await TcpPod.open(h, h.trusted.address);
    pod.sock.write(Buffer.concat([frame(query('one.example', 1)), frame(query('two.example', 2))]));
    const first = await h.trusted.received.next();
    const second = await h.trusted.received.next();
    second.reply(answer(second.packet, [{ name: 'two.example', type: 'A', ttl: 60, data: '192.0.2.2' }]));
    first.reply(answer(first.packet, [{ name: 'one.example', type: 'A', ttl: 60, data: '192.0.2.1' }]));

    const replies = [dnsPacket.decode(await pod.inbox.next()), dnsPacket.decode(await pod.inbox.next())];
    expect(replies.map((r) => [r.id, r.questions![0]!.name, (r.answers![0] as { data: string }).data])).toEqual([
      [2, 'two.example', '192.0.2.2'],
      [1, 'one.example', '192.0.2.1'],
    ]);
    expect(h.trusted.tcpConnections).toBe(1);
    expect(h.learned.map((l) => l.names[0])).toEqual(['two.example', 'one.example']);
  });

  it('learns before it writes the answer to the pod', async () => {
    const h = await startProxy();
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const pod = await TcpPod.open(h, h.trusted.address);
    const order: string[] = [];
    const write = net.Socket.prototype.write;
    vi.spyOn(net.Socket.prototype, 'write').mockImplementation(function (this: net.Socket, ...args: unknown[]) {
      if (this.remoteAddress === pod.address) order.push('reply written');
      return (write as (...a: unknown[]) => boolean).apply(this, args);
    });
    h.onLearn = () => order.push('learned');
    await pod.ask(query('api.github.com', 3));
    expect(order).toEqual(['learned', 'reply written']);
  });

  it('answers SERVFAIL when programming fails', async () => {
    const h = await startProxy();
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    h.onLearn = () => {
      throw new Error('map full');
    };
    const pod = await TcpPod.open(h, h.trusted.address);
    expect(await pod.ask(query('api.github.com', 4))).toMatchObject({ id: 4, rcode: 'SERVFAIL' });
  });

  it('refuses over TCP as over UDP', async () => {
    const h = await startProxy();
    const pod = await TcpPod.open(h, h.rogue.address);
    expect(await pod.ask(query('api.github.com', 5))).toMatchObject({ id: 5, rcode: 'REFUSED' });
    expect(h.rogue.tcpConnections).toBe(0);
  });

  it('ignores and counts upstream answers with a wrong id or question', async () => {
    const h = await startProxy();
    h.trusted.hold.add('api.github.com');
    const pod = await TcpPod.open(h, h.trusted.address);
    pod.send(query('api.github.com', 6));
    const fwd = await h.trusted.received.next();
    const evil = { ...GITHUB_A, data: '203.0.113.66' };
    fwd.reply(answer(fwd.packet, [evil], { id: fwd.id ^ 1 }));
    fwd.reply(answer(fwd.packet, [{ ...evil, name: 'evil.example' }], { name: 'evil.example' }));
    fwd.reply(Buffer.alloc(5)); // too short for a header
    fwd.reply(answer(fwd.packet, [GITHUB_A]));
    const res = dnsPacket.decode(await pod.inbox.next());
    expect(res.answers).toMatchObject([{ data: '140.82.112.5' }]);
    expect(h.proxy.stats).toMatchObject({ spoofed: 2, malformed: 1, answered: 1 });
    expect(h.learned.flatMap((l) => l.addresses.map((x) => x.ip))).toEqual(['140.82.112.5']);
  });

  it('survives a pod that sends part of a frame and closes', async () => {
    const h = await startProxy();
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const partial = await TcpPod.open(h, h.trusted.address);
    const whole = frame(query('api.github.com', 8));
    partial.sock.end(whole.subarray(0, 12));
    await partial.closed;
    expect(h.proxy.stats).toMatchObject({ queries: 0, malformed: 0 });

    const pod = await TcpPod.open(h, h.trusted.address);
    expect(await pod.ask(query('api.github.com', 9))).toMatchObject({ id: 9, rcode: 'NOERROR' });
    expect(h.errors).toEqual([]);
  });

  it('reassembles a query split across writes', async () => {
    const h = await startProxy();
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const pod = await TcpPod.open(h, h.trusted.address);
    const whole = frame(query('api.github.com', 10));
    pod.sock.setNoDelay(true);
    pod.sock.write(whole.subarray(0, 1));
    await until('the first byte', () => pod.sock.bytesWritten >= 1);
    pod.sock.write(whole.subarray(1, 9));
    pod.sock.write(whole.subarray(9));
    expect(dnsPacket.decode(await pod.inbox.next())).toMatchObject({ id: 10, rcode: 'NOERROR' });
  });

  it('counts an empty or garbage frame as malformed and keeps the connection', async () => {
    const h = await startProxy();
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const pod = await TcpPod.open(h, h.trusted.address);
    pod.sock.write(Buffer.concat([frame(Buffer.alloc(0)), frame(Buffer.from('garbage garbage'))]));
    expect(await pod.ask(query('api.github.com', 11))).toMatchObject({ id: 11, rcode: 'NOERROR' });
    expect(h.proxy.stats).toMatchObject({ queries: 3, malformed: 2 });
  });

  it('closes a connection that has no NAT entry', async () => {
    const h = await startProxy();
    const pod = await TcpPod.open(h, undefined);
    await pod.closed;
    expect(h.proxy.stats.unattributed).toBe(1);
  });

  it('answers SERVFAIL, instead of hanging, when one connection has more queries in flight than there are ids', async () => {
    const IDS = 65_536;
    const QUERIES = IDS + 4_000;
    // A per-pod budget above the id space, so the id search is what is tested.
    const h = await startProxy('refuse', { limits: { podMaxInflight: 2 * IDS } });
    const pod = await TcpPod.open(h, h.trusted.address);
    const frames: Buffer[] = [];
    for (let i = 0; i < QUERIES; i++) {
      const name = `q${i}.example`;
      h.trusted.hold.add(name); // never answered
      frames.push(frame(query(name, i & 0xffff)));
    }
    pod.sock.write(Buffer.concat(frames));
    await until('every query read', () => h.proxy.stats.queries === QUERIES);

    const { forwarded, servfail } = h.proxy.stats;
    expect(forwarded + servfail).toBe(QUERIES);
    expect(forwarded).toBeLessThanOrEqual(IDS);
    await until('every SERVFAIL delivered', () => pod.inbox.count === servfail);
    for (let n = 0; n < servfail; n++) {
      const r = dnsPacket.decode(await pod.inbox.next());
      expect(r).toMatchObject({ rcode: 'SERVFAIL' });
      expect(Number(/^q(\d+)\./.exec(r.questions![0]!.name)![1]) & 0xffff).toBe(r.id);
    }

    // The proxy is still serving.
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const other = await UdpPod.open(h, h.trusted.address);
    expect(await other.ask(h, query('api.github.com', 1))).toMatchObject({ id: 1, rcode: 'NOERROR' });
  });
});

describe('DnsProxy per-pod budgets', () => {
  const held = (h: Harness, n: number, prefix: string): Buffer[] =>
    Array.from({ length: n }, (_, i) => {
      h.trusted.hold.add(`${prefix}${i}.example`);
      return query(`${prefix}${i}.example`, 100 + i);
    });

  it('drops and counts, for that pod only, UDP queries beyond its in-flight budget; an answer gives budget back', async () => {
    const h = await startProxy('refuse', { limits: { podMaxInflight: 4 } });
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const flooder = await UdpPod.open(h, h.trusted.address);
    const victim = await UdpPod.open(h, h.trusted.address, OTHER_POD);
    for (const q of held(h, 6, 'u')) flooder.send(h, q);
    await until('six queries read', () => h.proxy.stats.queries === 6);
    const fwd = await Promise.all([0, 1, 2, 3].map(() => h.trusted.received.next()));
    expect(h.proxy.stats).toMatchObject({ forwarded: 4, overInflight: 2 });
    expect(h.proxy.podStats().get(POD)).toEqual({ inflight: 4, tcpConnections: 0, overInflight: 2, tcpOverLimit: 0 });

    // Another pod is not held back by the flooder's budget.
    expect(await victim.ask(h, query('api.github.com', 1))).toMatchObject({ id: 1, rcode: 'NOERROR' });
    expect(h.proxy.podStats().get(OTHER_POD)).toEqual({ inflight: 0, tcpConnections: 0, overInflight: 0, tcpOverLimit: 0 });

    // One answer released: one more query of the flooder's goes through.
    fwd[0]!.reply(answer(fwd[0]!.packet, []));
    await flooder.inbox.next('the released answer');
    flooder.send(h, query('api.github.com', 2));
    expect(dnsPacket.decode(await flooder.inbox.next())).toMatchObject({ id: 2, rcode: 'NOERROR' });
    expect(h.proxy.podStats().get(POD)).toMatchObject({ inflight: 3, overInflight: 2 });
    expect(h.trusted.received.count).toBe(6); // four held, the victim's and this one: the dropped two never left
  });

  it('gives a UDP query\'s budget back when it times out upstream', async () => {
    const h = await startProxy('refuse', { limits: { podMaxInflight: 2 }, upstreamTimeoutMs: 100 });
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const pod = await UdpPod.open(h, h.trusted.address);
    for (const q of held(h, 2, 't')) pod.send(h, q);
    await until('both expired', () => h.proxy.stats.upstreamTimeouts === 2);
    expect(h.proxy.podStats().get(POD)).toMatchObject({ inflight: 0, overInflight: 0 });
    expect(await pod.ask(h, query('api.github.com', 3))).toMatchObject({ id: 3, rcode: 'NOERROR' });
  });

  it('applies the in-flight budget over TCP too, across the pod\'s connections, and a closed connection gives it back', async () => {
    const h = await startProxy('refuse', { limits: { podMaxInflight: 3 } });
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const a = await TcpPod.open(h, h.trusted.address);
    const b = await TcpPod.open(h, h.trusted.address);
    const qs = held(h, 5, 'c');
    a.sock.write(Buffer.concat(qs.slice(0, 2).map(frame)));
    await until('a\'s queries forwarded', () => h.proxy.stats.forwarded === 2);
    b.sock.write(Buffer.concat(qs.slice(2).map(frame)));
    await until('b\'s queries read', () => h.proxy.stats.queries === 5);
    expect(h.proxy.stats).toMatchObject({ forwarded: 3, overInflight: 2 });
    expect(h.proxy.podStats().get(POD)).toMatchObject({ inflight: 3, tcpConnections: 2, overInflight: 2 });

    a.sock.destroy();
    await until('a\'s budget given back', () => h.proxy.podStats().get(POD)!.inflight === 1 && h.proxy.podStats().get(POD)!.tcpConnections === 1);
    expect(await b.ask(query('api.github.com', 4))).toMatchObject({ id: 4, rcode: 'NOERROR' });
  });

  it('releases a TCP answer once: a repeated upstream answer is not sent to the pod again', async () => {
    const h = await startProxy();
    h.trusted.hold.add('api.github.com');
    const pod = await TcpPod.open(h, h.trusted.address);
    pod.send(query('api.github.com', 0x4242));
    const fwd = await h.trusted.received.next();
    expect(fwd.id).not.toBe(0x4242); // (a fresh random id; 1 in 65,536 it is the same and this proves less)
    const a = answer(fwd.packet, [GITHUB_A]);
    fwd.reply(a);
    fwd.reply(a);
    expect(dnsPacket.decode(await pod.inbox.next())).toMatchObject({ id: 0x4242, rcode: 'NOERROR' });
    await until('the repeat counted', () => h.proxy.stats.spoofed === 1);
    expect(pod.inbox.pending).toBe(0);
    expect(h.proxy.stats).toMatchObject({ answered: 1, spoofed: 1 });
    expect(h.proxy.podStats().get(POD)).toMatchObject({ inflight: 0 });
  });

  it('expires TCP queries nobody answers, like UDP ones, and keeps the connection', async () => {
    const h = await startProxy('refuse', { upstreamTimeoutMs: 100 });
    h.trusted.hold.add('slow.example');
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const pod = await TcpPod.open(h, h.trusted.address);
    pod.send(query('slow.example', 1));
    await h.trusted.received.next();
    await until('the TCP query expired', () => h.proxy.stats.upstreamTimeouts === 1);
    expect(h.proxy.podStats().get(POD)).toMatchObject({ inflight: 0 });
    expect(await pod.ask(query('api.github.com', 2))).toMatchObject({ id: 2, rcode: 'NOERROR' });
  });

  it('closes at once a pod\'s TCP connections beyond its limit, while another pod\'s connection still works', async () => {
    const h = await startProxy('refuse', { limits: { tcpMaxPerPod: 2, tcpMax: 100 } });
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const kept = [await TcpPod.open(h, h.trusted.address), await TcpPod.open(h, h.trusted.address)];
    await until('both accepted', () => h.proxy.podStats().get(POD)?.tcpConnections === 2);
    const over = await Promise.all([0, 1, 2].map(() => TcpPod.open(h, h.trusted.address)));
    await Promise.all(over.map((p) => p.closed));
    expect(h.proxy.podStats().get(POD)).toMatchObject({ tcpConnections: 2, tcpOverLimit: 3 });
    expect(h.proxy.stats.tcpOverLimit).toBe(3);

    const other = await TcpPod.open(h, h.trusted.address, OTHER_POD);
    expect(await other.ask(query('api.github.com', 1))).toMatchObject({ id: 1, rcode: 'NOERROR' });
    for (const [i, p] of kept.entries()) expect(await p.ask(query('api.github.com', 10 + i))).toMatchObject({ rcode: 'NOERROR' });

    // A closed connection makes room for a new one.
    kept[0]!.sock.destroy();
    await until('the slot freed', () => h.proxy.podStats().get(POD)?.tcpConnections === 1);
    const again = await TcpPod.open(h, h.trusted.address);
    expect(await again.ask(query('api.github.com', 3))).toMatchObject({ id: 3, rcode: 'NOERROR' });
  });

  it('closes at once any TCP connection beyond the node-wide total, counted for the pod that opened it', async () => {
    const h = await startProxy('refuse', { limits: { tcpMaxPerPod: 8, tcpMax: 3 } });
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    const hog = await Promise.all([0, 1, 2].map(() => TcpPod.open(h, h.trusted.address)));
    await until('all three accepted', () => h.proxy.podStats().get(POD)?.tcpConnections === 3);
    const refused = await TcpPod.open(h, h.trusted.address, OTHER_POD);
    await refused.closed;
    expect(h.proxy.podStats().get(OTHER_POD)).toMatchObject({ tcpConnections: 0, tcpOverLimit: 1 });
    expect(h.proxy.podStats().get(POD)).toMatchObject({ tcpConnections: 3, tcpOverLimit: 0 });
    expect(await hog[0]!.ask(query('api.github.com', 1))).toMatchObject({ rcode: 'NOERROR' });
  });

  it('forgets the pods that are gone', async () => {
    const h = await startProxy();
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    for (const ifindex of [POD, OTHER_POD]) await (await UdpPod.open(h, h.trusted.address, ifindex)).ask(h, query('api.github.com', 1));
    expect([...h.proxy.podStats().keys()].sort()).toEqual([POD, OTHER_POD]);
    h.proxy.retainPods(new Set([OTHER_POD]));
    expect([...h.proxy.podStats().keys()]).toEqual([OTHER_POD]);
  });

  it('rate-limits the error lines a pod can trigger and logs names under dns.qname', async () => {
    const h = await startProxy();
    const evil = 'evil"\\n{"level":60}.example';
    h.trusted.zone.set(evil.toLowerCase(), [{ ...GITHUB_A, name: evil }]);
    h.onLearn = () => {
      throw new Error('map full');
    };
    const pod = await UdpPod.open(h, h.trusted.address);
    for (let i = 0; i < 30; i++) expect(await pod.ask(h, query(evil, i))).toMatchObject({ id: i, rcode: 'SERVFAIL' });
    expect(h.proxy.stats.servfail).toBe(30);
    const lines = h.errors.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.length).toBe(10);
    for (const l of lines) {
      // Names are logged as read off the wire, in presentation format (policy/dnsname.ts): `"` and `\` escaped.
      expect(l).toMatchObject({ kind: 'learn-failed', dns: { qname: 'evil\\"\\\\n{\\"level\\":60}.example' }, msg: 'could not program what a DNS answer allows: answering SERVFAIL' });
      expect(l).not.toHaveProperty('name');
    }
  });
});

describe('DnsProxy metrics hooks (observer)', () => {
  /** Records every hook call; latency in ms, rounded down. */
  function recorder() {
    const calls: string[] = [];
    const seconds: number[] = [];
    const observer: ProxyObserver = {
      query: (protocol) => calls.push(`query ${protocol}`),
      answered: (result, reason, s) => {
        calls.push(`${result} ${reason}`);
        seconds.push(s);
      },
    };
    return { calls, seconds, observer };
  }

  it('reports each query and each answer with its result, reason and latency, the learning included', async () => {
    const r = recorder();
    const h = await startProxy('refuse', { observer: r.observer });
    h.trusted.zone.set('api.github.com', [GITHUB_A]);
    h.trusted.zone.set('big.example', Array.from({ length: 100 }, (_, i): dnsPacket.Answer => ({ name: 'big.example', type: 'A', ttl: 60, data: `192.0.2.${i + 1}` })));
    const LEARN_MS = 30;
    h.onLearn = (l) => {
      if (l.names[0] !== 'api.github.com') return;
      const until = performance.now() + LEARN_MS;
      while (performance.now() < until); // programming the datapath takes this long
    };
    const pod = await UdpPod.open(h, h.trusted.address);
    await pod.ask(h, query('api.github.com', 1));
    await pod.ask(h, query('big.example', 2));
    await (await UdpPod.open(h, h.rogue.address)).ask(h, query('api.github.com', 3));
    await (await UdpPod.open(h, h.trusted.address, MATCHED_ONLY_POD)).ask(h, query('elsewhere.example', 4));
    await (await UdpPod.open(h, h.trusted.address, 99)).ask(h, query('api.github.com', 5));
    h.onLearn = () => {
      throw new Error('map full');
    };
    await pod.ask(h, query('api.github.com', 6));
    (await UdpPod.open(h, undefined)).send(h, query('api.github.com', 7)); // no NAT entry: counted, dropped
    await until('the unattributed query', () => h.proxy.stats.unattributed === 1);
    const tcp = await TcpPod.open(h, h.trusted.address);
    h.onLearn = () => {};
    await tcp.ask(query('api.github.com', 8));
    expect(r.calls).toEqual([
      'query udp', 'forwarded upstream',
      'query udp', 'truncated too-big',
      'query udp', 'refused untrusted-resolver',
      'query udp', 'refused name-not-allowed',
      'query udp', 'refused unknown-endpoint',
      'query udp', 'servfail learn-failed',
      'query udp',
      'query tcp', 'forwarded upstream',
    ]);
    // From the query's arrival to the answer's release: the learning is inside.
    expect(r.seconds[0]).toBeGreaterThanOrEqual(LEARN_MS / 1000);
    expect(r.seconds[0]).toBeLessThan(1);
    for (const s of r.seconds) expect(s).toBeGreaterThan(0);
  });
});
