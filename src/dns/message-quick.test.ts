// parseQuery and parseResponse read the common packets without dns-packet's
// whole-packet decoder (message.ts quickQuery / quickResponse). Differential:
// for generated packets, well-formed and then damaged (bytes changed, cut
// short, counts changed), the quick path must agree exactly with the general
// one: the same result, or both MalformedError.
import { randomInt } from 'node:crypto';
import * as dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../test/helpers/prng.js';
import { nameText } from '../policy/index.js';
import { MalformedError, parseQuery, parseQueryGeneral, parseResponse, parseResponseGeneral, quickQuery, quickResponse } from './message.js';

const SEED = process.env.SLUICE_FUZZ_SEED ? Number(process.env.SLUICE_FUZZ_SEED) : randomInt(2 ** 31);
const N = 20_000;

function outcome<T>(fn: () => T): T | 'malformed' {
  try {
    return fn();
  } catch (err) {
    if (err instanceof MalformedError) return 'malformed';
    throw err;
  }
}

class Gen {
  readonly r: () => number;
  constructor(seed: number) {
    this.r = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  name(): string {
    const labels = ['www', 'Example', 'com', 'a', 'cdn-1', 'x'.repeat(63), 'k8s', 'svc', 'cluster', 'local', 'dot\\.ted'];
    return Array.from({ length: 1 + this.int(5) }, () => this.pick(labels)).join('.');
  }
  ip4(): string {
    return Array.from({ length: 4 }, () => this.int(256)).join('.');
  }
  ip6(): string {
    return Array.from({ length: 8 }, () => (this.r() < 0.4 ? '0' : this.int(65536).toString(16))).join(':');
  }
  record(owner: string): dnsPacket.Answer {
    const ttl = this.pick([0, 30, 300, 0x7fffffff, 0xffffffff]);
    switch (this.int(7)) {
      case 0:
      case 1:
        return { name: owner, type: 'A', ttl, data: this.ip4() };
      case 2:
        return { name: owner, type: 'AAAA', ttl, data: this.ip6() };
      case 3:
        return { name: owner, type: 'CNAME', ttl, data: this.name() };
      case 4:
        return { name: owner, type: 'TXT', ttl, data: ['hello', 'world'] };
      case 5:
        return { name: owner, type: 'MX', ttl, data: { preference: 10, exchange: this.name() } };
      default:
        return { name: owner, type: 'NS', ttl, data: this.name() };
    }
  }
  damage(buf: Buffer): Buffer {
    const b = Buffer.from(buf);
    switch (this.int(5)) {
      case 0:
        return b; // intact
      case 1: {
        for (let i = 1 + this.int(3); i > 0; i--) b[this.int(b.length)] = this.int(256);
        return b;
      }
      case 2:
        return b.subarray(0, this.int(b.length + 1));
      case 3: {
        b.writeUInt16BE(this.int(6), 4 + 2 * this.int(4)); // a section count
        return b;
      }
      default: {
        const at = 12 + this.int(Math.max(1, b.length - 12));
        if (at < b.length) b[at] = this.pick([0xc0, 0xc0 | this.int(64), 0x40, 0x80, 0, 63, 64]);
        return b;
      }
    }
  }
}

describe(`quick DNS parsing agrees with the general path (seed ${SEED})`, () => {
  it('parseQuery', () => {
    const g = new Gen(SEED);
    let quick = 0;
    for (let i = 0; i < N; i++) {
      const opt = g.r() < 0.2;
      const pkt = dnsPacket.encode({
        id: g.int(65536),
        type: 'query',
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ name: g.name(), type: g.pick(['A', 'AAAA', 'TXT', 'MX'] as const), class: 'IN' }],
        additionals: opt ? [{ name: '.', type: 'OPT', udpPayloadSize: 1232, flags: 0 } as dnsPacket.Answer] : [],
      });
      const buf = g.damage(pkt);
      const got = outcome(() => parseQuery(buf));
      const want = outcome(() => parseQueryGeneral(buf));
      if (JSON.stringify(got) !== JSON.stringify(want)) expect({ i, buf: buf.toString('hex'), got }).toEqual({ i, buf: buf.toString('hex'), got: want });
      if (quickQuery(buf) !== undefined) quick++;
    }
    expect(quick).toBeGreaterThan(N / 4); // the quick path itself answers, not only the fallback
  });

  it('parseResponse', () => {
    const g = new Gen(SEED + 1);
    let ok = 0; // answered by the quick path itself
    for (let i = 0; i < N; i++) {
      const qname = g.name();
      const answers: dnsPacket.Answer[] = [];
      let owner = qname;
      for (let n = g.int(6); n > 0; n--) {
        const rr = g.record(g.r() < 0.8 ? owner : g.name());
        if (rr.type === 'CNAME') owner = rr.data as string;
        answers.push(rr);
      }
      const pkt = dnsPacket.encode({
        id: g.int(65536),
        type: 'response',
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | g.pick([0, 0, 0, 2, 3]),
        questions: [{ name: qname, type: g.pick(['A', 'AAAA'] as const), class: 'IN' }],
        answers,
        authorities: g.r() < 0.3 ? [g.record(qname)] : [],
        additionals: g.r() < 0.3 ? [g.record(qname), { name: '.', type: 'OPT', udpPayloadSize: 1232, flags: 0 } as dnsPacket.Answer] : [],
      });
      const buf = g.damage(pkt);
      const got = outcome(() => parseResponse(buf));
      const want = outcome(() => parseResponseGeneral(buf));
      if (JSON.stringify(got) !== JSON.stringify(want)) expect({ i, buf: buf.toString('hex'), got }).toEqual({ i, buf: buf.toString('hex'), got: want });
      if (quickResponse(buf) !== undefined) ok++;
    }
    expect(ok).toBeGreaterThan(N / 4);
  });

  it('reads names as escapeLabel spells each label, plain or not (readName gathers plain names in one piece)', () => {
    const g = new Gen(SEED + 2);
    for (let i = 0; i < 5_000; i++) {
      const labels = Array.from({ length: 1 + g.int(4) }, () => {
        const plain = g.r() < 0.7;
        return Buffer.from(Array.from({ length: 1 + g.int(12) }, () => (plain ? g.pick([0x61, 0x62, 0x2d, 0x5f, 0x30, 0x41]) : g.int(256))));
      });
      const wire = Buffer.concat([Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels.flatMap((l) => [Buffer.from([l.length]), l]), Buffer.from([0, 0, 1, 0, 1])]);
      expect(parseQuery(wire).question.name).toBe(nameText(labels));
    }
  });
});
