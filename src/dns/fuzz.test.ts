// "Malformed and truncated packets never crash the proxy": generated packets,
// from a seeded PRNG, through the proxy's own socket handlers, on both the
// pod side (queries) and the resolver side (answers to a query in flight).
// Every packet is checked against what the contract says should happen to
// it: malformed → dropped and counted; a well-formed query → refused or
// forwarded; an answer → spoofed (dropped), malformed, or released.
//
// The seed is printed; SLUICE_FUZZ_SEED=<seed> replays a run.
// SLUICE_FUZZ_PACKETS sets the generated count (`make fuzz`: 1,000,000; the
// suite's default, 100,000, is what CI runs).
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalName } from '../policy/index.js';
import type { Learned } from './message.js';
import { DnsProxy, type NatInfo, type Peer, type ProxyStats } from './proxy.js';
import { mulberry32 } from '../../test/helpers/prng.js';

const PACKETS = Number(process.env.SLUICE_FUZZ_PACKETS) > 0 ? Math.floor(Number(process.env.SLUICE_FUZZ_PACKETS)) : 100_000;
const SOCKET_PACKETS = 5_000;
/** Small enough that a batch fits in the socket's receive buffer (nothing is dropped). */
const SOCKET_BATCH = 20;
const WAIT_MS = 10_000;
/** Generous: about 10 s per 100,000 packets on an idle machine, and CI machines are not idle. */
const FUZZ_TIMEOUT_MS = Math.max(120_000, (PACKETS / 100_000) * 60_000);

const SEED = process.env.SLUICE_FUZZ_SEED ? Number(process.env.SLUICE_FUZZ_SEED) : randomInt(2 ** 31);
console.log(`DNS fuzz seed ${SEED} (replay: SLUICE_FUZZ_SEED=${SEED})`);

// ---------------------------------------------------------------- generation

class Gen {
  readonly #r: () => number;
  constructor(seed: number) {
    this.#r = mulberry32(seed);
  }
  float(): number {
    return this.#r();
  }
  /** 0 ≤ n < max */
  int(max: number): number {
    return Math.floor(this.#r() * max);
  }
  chance(p: number): boolean {
    return this.#r() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

const QNAME = 'Fuzz.Example';
/** The name of the "still serving?" queries. */
const ALIVE = 'still.alive.example';
const LABEL_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_';
const QTYPES: dnsPacket.RecordType[] = ['A', 'AAAA', 'CNAME', 'TXT', 'MX', 'NS', 'SRV', 'PTR', 'SOA', 'CAA', 'HINFO'];

function label(g: Gen): string {
  const n = g.chance(0.05) ? 63 : 1 + g.int(20);
  let s = '';
  for (let i = 0; i < n; i++) s += LABEL_CHARS[g.int(LABEL_CHARS.length)];
  return s;
}

function name(g: Gen): string {
  if (g.chance(0.3)) return g.pick([QNAME, QNAME.toLowerCase(), `${QNAME}.`, QNAME.toUpperCase(), 'api.github.com', 'a.b']);
  return Array.from({ length: 1 + g.int(4) }, () => label(g)).join('.');
}

function record(g: Gen, owner: string): dnsPacket.Answer {
  const ttl = g.pick([0, 1, 30, 300, 86_400, 2 ** 31, 2 ** 32 - 1]);
  switch (g.int(8)) {
    case 0:
      return { name: owner, type: 'A', ttl, data: `${g.int(256)}.${g.int(256)}.${g.int(256)}.${g.int(256)}` };
    case 1:
      return { name: owner, type: 'AAAA', ttl, data: `2001:db8::${g.int(0xffff).toString(16)}` };
    case 2:
      return { name: owner, type: 'CNAME', ttl, data: name(g) };
    case 3:
      return { name: owner, type: 'TXT', ttl, data: [g.bytes(g.int(40)).toString('latin1')] };
    case 4:
      return { name: owner, type: 'MX', ttl, data: { preference: g.int(100), exchange: name(g) } };
    case 5:
      return { name: owner, type: 'SRV', ttl, data: { priority: 1, weight: 2, port: 443, target: name(g) } };
    case 6:
      return { name: owner, type: 'NS', ttl, data: name(g) };
    default:
      return { name: owner, type: 'A', ttl, data: '192.0.2.1' };
  }
}

function validQuery(g: Gen): Buffer {
  return dnsPacket.encode({
    id: g.int(65536),
    type: 'query',
    flags: g.chance(0.8) ? dnsPacket.RECURSION_DESIRED : g.int(0x8000),
    questions: Array.from({ length: g.chance(0.9) ? 1 : g.int(3) }, () => ({ name: name(g), type: g.pick(QTYPES), class: 'IN' as const })),
  });
}

/** An answer to the fuzz query (mostly), with a CNAME chain, addresses and noise. */
function validResponse(g: Gen): Buffer {
  const asked = g.chance(0.85) ? g.pick([QNAME, QNAME.toLowerCase(), `${QNAME.toUpperCase()}.`]) : name(g);
  const answers: dnsPacket.Answer[] = [];
  let owner = asked;
  for (let hops = g.int(4); hops > 0; hops--) {
    const next = name(g);
    answers.push({ name: owner, type: 'CNAME', ttl: 60, data: next });
    owner = next;
  }
  for (let n = g.int(5); n > 0; n--) answers.push(record(g, g.chance(0.8) ? owner : name(g)));
  for (let i = answers.length - 1; i > 0; i--) {
    const j = g.int(i + 1);
    [answers[i], answers[j]] = [answers[j]!, answers[i]!];
  }
  return dnsPacket.encode({
    id: g.int(65536),
    type: 'response',
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (g.chance(0.9) ? 0 : g.int(16)),
    questions: [{ name: asked, type: g.chance(0.9) ? 'A' : g.pick(QTYPES), class: 'IN' }],
    answers,
    additionals: g.chance(0.3) ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options: [] } as unknown as dnsPacket.Answer] : [],
  });
}

const valid = (g: Gen): Buffer => (g.chance(0.5) ? validQuery(g) : validResponse(g));

/** A name at offset 12 made of a pointer (to itself, forward, past the end) or a chain of them. */
function pointerGames(g: Gen): Buffer {
  const header = Buffer.from([0, 1, g.pick([0x01, 0x81]), 0, 0, 1, 0, g.int(3), 0, 0, 0, 0]);
  const ptr = (to: number) => [0xc0 | ((to >> 8) & 0x3f), to & 0xff];
  const body = g.pick([
    [...ptr(12)], // to itself
    [...ptr(14), ...ptr(12)], // forward, then back
    [1, 0x61, ...ptr(12)], // a label, then back to the start
    [...ptr(0x3fff)], // past the end
    [...ptr(2)], // into the header
    [0x80, 0x00], // reserved label type
    [0x40, 0x00], // extended label type
  ]);
  return Buffer.concat([header, Buffer.from(body), Buffer.from([0, 1, 0, 1]), g.chance(0.5) ? Buffer.from(ptr(12)) : Buffer.alloc(0), g.bytes(g.int(20))]);
}

function mutate(g: Gen, base: Buffer): Buffer {
  const b = Buffer.from(base);
  switch (g.int(6)) {
    case 0: // truncated
      return b.subarray(0, g.int(b.length));
    case 1: {
      // bit flips
      for (let n = 1 + g.int(8); n > 0; n--) b[g.int(b.length)]! ^= 1 << g.int(8);
      return b;
    }
    case 2: {
      // counts
      for (let n = 1 + g.int(4); n > 0; n--) b.writeUInt16BE(g.pick([0, 1, 2, 0x7f, 0xffff, g.int(65536)]), 4 + 2 * g.int(4));
      return b;
    }
    case 3: {
      // a label length running past its name (or the packet)
      if (b.length > 12) b[12 + g.int(Math.min(b.length - 12, 40))] = g.pick([63, 64, 127, 191, 255, b.length]);
      return b;
    }
    case 4: {
      // 0xffff over a random 16-bit field: an rdlength, a type, a class…
      if (b.length >= 14) b.writeUInt16BE(0xffff, 12 + g.int(b.length - 13));
      return b;
    }
    default: // garbage appended
      return Buffer.concat([b, g.bytes(g.int(64))]);
  }
}

function packet(g: Gen): Buffer {
  const k = g.int(100);
  if (k < 15) return g.bytes(g.int(601));
  if (k < 20) return Buffer.concat([g.bytes(12), g.bytes(g.int(100))]);
  if (k < 30) return validQuery(g);
  if (k < 42) return validResponse(g);
  if (k < 85) return mutate(g, valid(g));
  if (k < 92) return pointerGames(g);
  if (k < 96) return g.bytes(g.int(13));
  return Buffer.alloc(0);
}

// ---------------------------------------------------------------- oracle

/** The authority on well-formedness is dns-packet, reading no further than the packet goes. */
function decodes(buf: Buffer): dnsPacket.DecodedPacket | undefined {
  // Counts more records than the bytes can hold (a record is at least 11
  // bytes, a question 5) cannot decode; dns-packet would take milliseconds to
  // find out, and this runs 400,000 times.
  if (buf.length >= 12 && 12 + buf.readUInt16BE(4) * 5 + (buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10)) * 11 > buf.length) return undefined;
  try {
    const p = dnsPacket.decode(buf);
    return dnsPacket.decode.bytes <= buf.length ? p : undefined;
  } catch {
    return undefined;
  }
}

/** A name at `at` written out label by label, without a compression pointer. */
function uncompressed(buf: Buffer, at: number): boolean {
  while (at < buf.length && buf[at] !== 0) {
    if (buf[at]! >= 0x40) return false;
    at += 1 + buf[at]!;
  }
  return true;
}

/** What the proxy accepts as a query (message.ts): QR clear, opcode QUERY, exactly one question, its name not compressed. */
function isQuery(buf: Buffer): boolean {
  const p = decodes(buf);
  return !!p && p.type === 'query' && ((buf.readUInt16BE(2) >> 11) & 0xf) === 0 && p.questions!.length === 1 && uncompressed(buf, 12);
}

const norm = (n: string) => (n.endsWith('.') ? n.slice(0, -1) : n).replace(/[A-Z]/g, (c) => c.toLowerCase());

type AnswerFate = 'malformed' | 'spoofed' | 'released';

/** dns-packet's decoder of one resource record (not in its typings). */
const answerCodec = (dnsPacket as unknown as { answer: { decode: ((buf: Buffer, offset: number) => unknown) & { bytes: number } } }).answer;

/** Where the name at `at` ends on the wire (a compression pointer ends it). */
function nameEnd(buf: Buffer, at: number): number {
  while (at < buf.length && buf[at] !== 0) {
    if (buf[at]! >= 0xc0) return at + 2;
    at += 1 + buf[at]!;
  }
  return at + 1;
}

/**
 * With one question, A, AAAA and CNAME answers must fill their RDLENGTH
 * exactly (4, 16, and the target name's own length); otherwise the proxy
 * calls the answer malformed. Records are framed as dns-packet frames them.
 */
function answerDataFits(buf: Buffer, p: dnsPacket.DecodedPacket): boolean {
  if (p.questions!.length !== 1) return true;
  let at = nameEnd(buf, 12) + 4;
  for (let i = 0; i < (p.answers ?? []).length; i++) {
    const rdata = nameEnd(buf, at) + 10;
    const type = buf.readUInt16BE(rdata - 10);
    const rdlength = buf.readUInt16BE(rdata - 2);
    if (type === 1 && rdlength !== 4) return false;
    if (type === 28 && rdlength !== 16) return false;
    if (type === 5 && nameEnd(buf, rdata) !== rdata + rdlength) return false;
    answerCodec.decode(buf, at);
    at += answerCodec.decode.bytes;
  }
  return true;
}

/** An answer that reached a pending query of `question`. */
function answerFate(buf: Buffer, question: { name: string; type: string }): AnswerFate {
  if (buf.length < 12) return 'malformed';
  const p = decodes(buf);
  if (!p || p.type !== 'response' || !answerDataFits(buf, p)) return 'malformed';
  const q = p.questions!.length === 1 ? p.questions![0]! : undefined;
  if (!q || norm(q.name) !== norm(question.name) || q.type !== question.type || (q.class ?? 'IN') !== 'IN') return 'spoofed';
  return 'released';
}

// ---------------------------------------------------------------- rig

const loopback = (): string => `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;

async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

interface Forwarded {
  id: number;
  from: Peer;
}

/**
 * A resolver that answers only ALIVE (NXDOMAIN), so no answer the test did not
 * send itself reaches the proxy; it keeps the queries for QNAME (type A) it
 * gets, so the test can answer them.
 */
class Resolver {
  readonly held: Forwarded[] = [];
  /** Called with each held query. */
  onHeld: (f: Forwarded) => void = () => {};
  readonly #tcpSockets = new Set<net.Socket>();
  constructor(
    readonly address: string,
    readonly udp: dgram.Socket,
    readonly tcp: net.Server,
  ) {
    udp.on('message', (msg, rinfo) => {
      const p = decodes(msg);
      const q = p?.questions?.length === 1 ? p.questions[0]! : undefined;
      if (!q) return;
      if (norm(q.name) === norm(QNAME) && q.type === 'A' && q.class === 'IN') {
        const f = { id: p!.id!, from: { address: rinfo.address, port: rinfo.port } };
        this.held.push(f);
        this.onHeld(f);
      }
      if (norm(q.name) === ALIVE) udp.send(dnsPacket.encode({ id: p!.id!, type: 'response', flags: 3, questions: p!.questions }), rinfo.port, rinfo.address);
    });
    tcp.on('connection', (c) => {
      this.#tcpSockets.add(c);
      c.on('error', () => c.destroy());
      c.on('close', () => this.#tcpSockets.delete(c));
      let buf = Buffer.alloc(0);
      c.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const p = decodes(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
          if (p?.questions?.length === 1 && norm(p.questions[0]!.name) === ALIVE) c.write(dnsPacket.streamEncode({ id: p.id!, type: 'response', flags: 3, questions: p.questions }));
        }
      });
    });
  }
  get port(): number {
    return this.udp.address().port;
  }
  static async start(): Promise<Resolver> {
    for (let attempt = 0; ; attempt++) {
      const address = loopback();
      const udp = dgram.createSocket('udp4');
      const tcp = net.createServer();
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject);
          udp.bind(0, address, () => resolve());
        });
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(udp.address().port, address, () => resolve());
        });
        return new Resolver(address, udp, tcp);
      } catch (err) {
        udp.close();
        tcp.close();
        if (attempt > 5) throw err;
      }
    }
  }
  async close(): Promise<void> {
    for (const c of this.#tcpSockets) c.destroy();
    this.udp.close();
    await new Promise((r) => this.tcp.close(r));
  }
}

/**
 * Pod "ports" of the in-process run: which NAT entry and endpoint each stands
 * for. None forwards (a MatchedOnly pod's rule matches no generated name): the
 * only query in flight must be the test's own, so an answer's fate is known.
 * Forwarding fuzzed queries is covered by the socket run.
 */
const PORT_UNKNOWN_ENDPOINT = 1000;
const PORT_MATCHED_ONLY = 1001;
const PORT_UNTRUSTED = 1002;
const POD_PORTS = [PORT_UNKNOWN_ENDPOINT, PORT_MATCHED_ONLY, PORT_UNTRUSTED];
const RULE_NAME = 'never.generated.example';

let resolver: Resolver;
let proxy: DnsProxy;
let proxyAddress: string;
let proxyPort: number;
const nat = new Map<string, NatInfo>();
const learned: Learned[] = [];
let learnFails = false;
const unexpected: string[] = [];
let pod: dgram.Socket;
const podInbox: Buffer[] = [];

beforeAll(async () => {
  resolver = await Resolver.start();
  const rogue = loopback();
  nat.set(`17/127.0.0.1/${PORT_UNKNOWN_ENDPOINT}`, { daddr: resolver.address, ifindex: 99 });
  nat.set(`17/127.0.0.1/${PORT_MATCHED_ONLY}`, { daddr: resolver.address, ifindex: 2 });
  nat.set(`17/127.0.0.1/${PORT_UNTRUSTED}`, { daddr: rogue, ifindex: 1 });
  const log = pino({ level: 'error' }, { write: (line: string) => void (line.includes('unexpected error') && unexpected.push(line)) });
  for (let attempt = 0; ; attempt++) {
    proxy = new DnsProxy(
      {
        nat: (protocol, ip, port) => nat.get(`${protocol}/${ip}/${port}`) ?? nat.get(`${protocol}/${ip}/*`),
        client: (ifindex) =>
          ifindex === 1 ? { pod: 'fuzz/allow-all', dns: 'AllowAll', rules: [7] } : ifindex === 2 ? { pod: 'fuzz/matched-only', dns: 'MatchedOnly', rules: [7] } : undefined,
        rulesFor: (n) => (n === RULE_NAME ? [7] : []),
        learn: (l) => {
          if (learnFails) throw new Error('map full');
          learned.push(l);
        },
        trusted: [resolver.address],
        untrusted: 'refuse',
        upstreamPort: resolver.port,
        // Thousands of queries of one pod wait at once here: the per-pod budget (proxy.test.ts) is lifted, so every one reaches the parser.
        limits: { podMaxInflight: Number.MAX_SAFE_INTEGER },
      },
      log,
    );
    proxyAddress = loopback();
    proxyPort = randomInt(20_000, 60_000);
    try {
      await proxy.start([proxyAddress], proxyPort);
      break;
    } catch (err) {
      await proxy.close();
      if (attempt > 5) throw err;
    }
  }
  pod = dgram.createSocket('udp4');
  await new Promise<void>((r) => pod.bind(0, '127.0.0.1', r));
  nat.set(`17/127.0.0.1/${pod.address().port}`, { daddr: resolver.address, ifindex: 1 });
  pod.on('message', (m) => podInbox.push(m));
});

afterAll(async () => {
  pod?.close();
  await proxy?.close();
  await resolver?.close();
});

const snapshot = (): ProxyStats => ({ ...proxy.stats });
const delta = (before: ProxyStats): ProxyStats => Object.fromEntries(Object.entries(proxy.stats).map(([k, v]) => [k, v - before[k as keyof ProxyStats]])) as unknown as ProxyStats;

/** A pod asks the fuzz name over the real socket; resolves once the resolver holds it. */
function armUpstream(): Promise<Forwarded> {
  return new Promise<Forwarded>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('gave up waiting for the query to reach the resolver')), WAIT_MS);
    resolver.onHeld = (f) => {
      clearTimeout(timer);
      resolver.onHeld = () => {};
      resolve(f);
    };
    pod.send(dnsPacket.encode({ id: 0xf00d, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: QNAME, type: 'A' }] }), proxyPort, proxyAddress);
  });
}

/** Which upstream socket (pool index) the query went out on: only there does a bad answer count as malformed rather than spoofed. */
function poolIndexOf(f: Forwarded): number {
  const probe = Buffer.alloc(12);
  probe.writeUInt16BE(f.id, 0);
  probe.writeUInt16BE(0x8000, 2);
  probe.writeUInt16BE(1, 4); // one question that is not there: undecodable
  const up = { address: resolver.address, port: resolver.port };
  for (let index = 0; index < 256; index++) {
    const before = proxy.stats.malformed;
    proxy.handleUpstreamUdp(4, index, probe, up);
    if (proxy.stats.malformed > before) return index;
  }
  throw new Error('no upstream socket has the query in flight');
}

function assertLearnedSane(): void {
  for (const l of learned) {
    for (const a of l.addresses) {
      expect(net.isIP(a.ip), `learned address ${JSON.stringify(a.ip)}`).not.toBe(0);
      expect(Number.isInteger(a.ttl) && a.ttl >= 0).toBe(true);
    }
    // Canonical presentation format: reads back as the same labels (a name may end in `\.`, a dot of its last label).
    for (const n of l.names) expect(canonicalName(n)).toBe(n);
  }
}

// ---------------------------------------------------------------- tests

describe(`DNS proxy fuzz (seed ${SEED})`, () => {
  it(`survives ${PACKETS} generated packets on the query path and the answer path, counting each as the contract says`, async () => {
    const g = new Gen(SEED);
    let expectMalformed = 0;
    let countedMalformed = 0;
    const fates: Record<AnswerFate, number> = { malformed: 0, spoofed: 0, released: 0 };
    const refusals: Array<{ query: Buffer; reply: Buffer }> = [];
    let inFlight = await armUpstream();
    let index = poolIndexOf(inFlight);
    const upstream = { address: resolver.address, port: resolver.port };
    const wrongPeers: Peer[] = [
      { address: loopback(), port: resolver.port },
      { address: resolver.address, port: resolver.port + 1 },
    ];

    for (let n = 0; n < PACKETS; n++) {
      const buf = packet(g);
      const where = () => `packet ${n} (seed ${SEED}): ${buf.toString('hex')}`;

      // The pod side.
      const q0 = snapshot();
      proxy.handleUdpQuery(buf, { address: '127.0.0.1', port: g.pick(POD_PORTS) }, (reply) => refusals.push({ query: buf, reply }));
      const q = delta(q0);
      const malformedQuery = !isQuery(buf);
      expectMalformed += malformedQuery ? 1 : 0;
      countedMalformed += q.malformed;
      // expect() only on a mismatch: it is the slow part of a 100k loop.
      if (q.queries !== 1 || q.malformed !== (malformedQuery ? 1 : 0) || q.refused !== (malformedQuery ? 0 : 1)) {
        expect({ queries: q.queries, malformed: q.malformed, refused: q.refused }, `query path, ${where()}`).toEqual({ queries: 1, malformed: malformedQuery ? 1 : 0, refused: malformedQuery ? 0 : 1 });
      }

      // The resolver side: mostly with the id of the query in flight, from the right peer.
      const ans = Buffer.from(buf);
      const rightId = ans.length >= 2 && g.chance(0.85);
      if (rightId) ans.writeUInt16BE(inFlight.id, 0);
      // A "wrong" id that happens to be the one in flight (1 in 65,536) is not wrong.
      else if (ans.length >= 2 && ans.readUInt16BE(0) === inFlight.id) ans.writeUInt16BE(inFlight.id ^ 1, 0);
      const rightPeer = g.chance(0.9);
      learnFails = g.chance(0.1);
      const a0 = snapshot();
      proxy.handleUpstreamUdp(4, index, ans, rightPeer ? upstream : g.pick(wrongPeers));
      const a = delta(a0);
      const fate: AnswerFate = ans.length < 12 ? 'malformed' : !rightId || !rightPeer ? 'spoofed' : answerFate(ans, { name: QNAME, type: 'A' });
      fates[fate]++;
      expectMalformed += fate === 'malformed' ? 1 : 0;
      countedMalformed += a.malformed;
      const got = { malformed: a.malformed, spoofed: a.spoofed, released: a.answered + a.servfail };
      if (got.malformed !== (fate === 'malformed' ? 1 : 0) || got.spoofed !== (fate === 'spoofed' ? 1 : 0) || got.released !== (fate === 'released' ? 1 : 0)) {
        expect(got, `answer path, ${where()}`).toEqual({ malformed: fate === 'malformed' ? 1 : 0, spoofed: fate === 'spoofed' ? 1 : 0, released: fate === 'released' ? 1 : 0 });
      }
      if (fate === 'released') {
        // SERVFAIL only when programming failed, and then nothing counts as learned.
        if (!learnFails) expect(a.servfail, where()).toBe(0);
        else expect(a.learnedAnswers, where()).toBe(0);
        inFlight = await armUpstream();
        index = poolIndexOf(inFlight);
      }
    }
    learnFails = false;

    console.log(`fuzz: ${PACKETS} packets, ${expectMalformed} of ${2 * PACKETS} handlings malformed; answers ${JSON.stringify(fates)}; ${learned.length} learned`);
    expect(countedMalformed).toBe(expectMalformed);
    // The generator reaches every fate on both sides.
    expect(fates.released).toBeGreaterThan(100);
    expect(fates.malformed).toBeGreaterThan(10_000);
    expect(fates.spoofed).toBeGreaterThan(10_000);
    expect(refusals.length).toBeGreaterThan(10_000);
    expect(learned.length).toBeGreaterThan(10);
    expect(unexpected).toEqual([]);
    assertLearnedSane();
    // What the proxy answers itself is a DNS answer to the very question it was asked.
    for (const { query, reply } of refusals) {
      const r = decodes(reply);
      const ok = r?.type === 'response' && r.id === query.readUInt16BE(0) && query.subarray(12, reply.length).equals(reply.subarray(12));
      if (!ok) expect(reply.toString('hex'), `REFUSED for ${query.toString('hex')}`).toBe('a decodable answer with the same id and question');
    }

    // Still serving: a real query over the real socket.
    pod.send(dnsPacket.encode({ id: 0x5a5a, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: ALIVE, type: 'A' }] }), proxyPort, proxyAddress);
    await until('an answer to a normal query', () => podInbox.some((m) => m.readUInt16BE(0) === 0x5a5a));
    expect(dnsPacket.decode(podInbox.find((m) => m.readUInt16BE(0) === 0x5a5a)!)).toMatchObject({ rcode: 'NXDOMAIN', type: 'response' });
  }, FUZZ_TIMEOUT_MS);

  it(`survives ${SOCKET_PACKETS} generated packets through the real UDP sockets, both sides`, async () => {
    const g = new Gen(SEED ^ 0x5eed);
    const sender = dgram.createSocket('udp4');
    await new Promise<void>((r) => sender.bind(0, '127.0.0.1', r));
    nat.set(`17/127.0.0.1/${sender.address().port}`, { daddr: resolver.address, ifindex: 1 });
    try {
      // Pod side.
      let expectMalformed = 0;
      const before = snapshot();
      for (let sent = 0; sent < SOCKET_PACKETS; ) {
        const batchStart = proxy.stats.queries;
        for (let i = 0; i < SOCKET_BATCH; i++, sent++) {
          const buf = packet(g);
          if (!isQuery(buf)) expectMalformed++;
          sender.send(buf, proxyPort, proxyAddress);
        }
        await until('the batch to be read', () => proxy.stats.queries - batchStart === SOCKET_BATCH);
      }
      const d = delta(before);
      expect(d.queries).toBe(SOCKET_PACKETS);
      expect(d.malformed).toBe(expectMalformed);
      expect(d.forwarded + d.refused + d.servfail).toBe(SOCKET_PACKETS - expectMalformed);

      // Resolver side: answers with the id in flight, sent from the resolver's own address and port.
      const inFlight = await armUpstream();
      const upBefore = snapshot();
      for (let sent = 0; sent < SOCKET_PACKETS; ) {
        const handled = () => proxy.stats.malformed + proxy.stats.spoofed + proxy.stats.answered + proxy.stats.servfail;
        const batchStart = handled();
        for (let i = 0; i < SOCKET_BATCH; i++, sent++) {
          const buf = Buffer.from(packet(g));
          if (buf.length >= 2) buf.writeUInt16BE(inFlight.id, 0);
          resolver.udp.send(buf, inFlight.from.port, inFlight.from.address);
        }
        await until('the batch of answers to be read', () => handled() - batchStart === SOCKET_BATCH);
      }
      const u = delta(upBefore);
      expect(u.malformed + u.spoofed + u.answered + u.servfail).toBe(SOCKET_PACKETS);
      expect(u.answered + u.servfail).toBeLessThanOrEqual(1); // one query in flight: at most one answer released
      expect(unexpected).toEqual([]);
      assertLearnedSane();

      // Still serving.
      const reply = new Promise<Buffer>((resolve) => sender.on('message', (m) => m.readUInt16BE(0) === 0x6b6b && resolve(m)));
      sender.send(dnsPacket.encode({ id: 0x6b6b, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: ALIVE, type: 'AAAA' }] }), proxyPort, proxyAddress);
      expect(dnsPacket.decode(await reply)).toMatchObject({ id: 0x6b6b, rcode: 'NXDOMAIN' });
    } finally {
      sender.close();
    }
  }, FUZZ_TIMEOUT_MS);

  it('survives generated frames and raw garbage over TCP', async () => {
    const g = new Gen(SEED ^ 0x7c9);
    const FRAMES = 2_000;
    const address = loopback();
    nat.set(`6/${address}/*`, { daddr: resolver.address, ifindex: 1 });
    const connect = async () => {
      const c = net.connect({ host: proxyAddress, port: proxyPort, localAddress: address });
      c.on('error', () => {});
      await new Promise<void>((resolve, reject) => {
        c.once('connect', resolve);
        c.once('error', reject);
      });
      return c;
    };

    // Well-framed fuzz, then a real query on the same connection.
    const c = await connect();
    const replies: Buffer[] = [];
    let buf = Buffer.alloc(0);
    c.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        replies.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
    });
    const before = snapshot();
    let expectMalformed = 0;
    const frames: Buffer[] = [];
    for (let i = 0; i < FRAMES; i++) {
      const p = packet(g).subarray(0, 0xffff);
      if (!isQuery(p)) expectMalformed++;
      const len = Buffer.alloc(2);
      len.writeUInt16BE(p.length);
      frames.push(len, p);
    }
    c.write(Buffer.concat(frames));
    await until('every frame read', () => proxy.stats.queries - before.queries === FRAMES);
    expect(delta(before).malformed).toBe(expectMalformed);
    c.write(dnsPacket.streamEncode({ id: 0x7d7d, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: ALIVE, type: 'A' }] }));
    await until('the answer to the real query', () => replies.some((r) => r.readUInt16BE(0) === 0x7d7d));
    c.destroy();

    // Raw garbage (a length prefix that lies), then a hang-up; then a fresh connection works.
    const junk = await connect();
    junk.end(g.bytes(3000));
    await new Promise((r) => junk.once('close', r));
    const fresh = await connect();
    const answered = new Promise<void>((resolve) => fresh.on('data', () => resolve()));
    fresh.write(dnsPacket.streamEncode({ id: 1, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: ALIVE, type: 'A' }] }));
    await answered;
    fresh.destroy();
    expect(unexpected).toEqual([]);
  });
});
