import * as dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { normalizeName } from '../policy/index.js';
import {
  errorResponse,
  headerOf,
  learnFrom,
  MalformedError,
  parseQuery,
  parseResponse,
  parseResponseGeneral,
  quickResponse,
  RCODE_REFUSED,
  RCODE_SERVFAIL,
  sameQuestion,
  type Question,
} from './message.js';

type Rr = dnsPacket.Answer;

const RD = dnsPacket.RECURSION_DESIRED;
const RCODE_NXDOMAIN = 3;

const a = (name: string, ip: string, ttl = 300): Rr => ({ name, type: 'A', ttl, data: ip });
const aaaa = (name: string, ip: string, ttl = 300): Rr => ({ name, type: 'AAAA', ttl, data: ip });
const cname = (name: string, target: string, ttl = 300): Rr => ({ name, type: 'CNAME', ttl, data: target });

function query(name: string, opts: { id?: number; type?: dnsPacket.RecordType; flags?: number } = {}): Buffer {
  return dnsPacket.encode({ id: opts.id ?? 0x4242, type: 'query', flags: opts.flags ?? RD, questions: [{ name, type: opts.type ?? 'A', class: 'IN' }] });
}

function response(name: string, answers: Rr[], opts: { id?: number; rcode?: number; type?: dnsPacket.RecordType; additionals?: Rr[]; authorities?: Rr[] } = {}): Buffer {
  return dnsPacket.encode({
    id: opts.id ?? 0x4242,
    type: 'response',
    flags: RD | dnsPacket.RECURSION_AVAILABLE | (opts.rcode ?? 0),
    questions: [{ name, type: opts.type ?? 'A', class: 'IN' }],
    answers,
    authorities: opts.authorities ?? [],
    additionals: opts.additionals ?? [],
  });
}

const learn = (buf: Buffer) => learnFrom(parseResponse(buf));

/** Every permutation of a small list, deterministically. */
function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [[...xs]];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]));
}

describe('normalizeName, as the proxy folds names', () => {
  it.each([
    ['API.GitHub.Com.', 'api.github.com'],
    ['api.github.com', 'api.github.com'],
    ['a..', 'a.'],
  ])('%j → %j', (input, out) => expect(normalizeName(input)).toBe(out));

  it('folds ASCII only, as policy matching does (the Kelvin sign is not "k")', () => {
    // Otherwise a wire name "\u212Aubernetes.io" would be learned, and matched, as kubernetes.io.
    expect(normalizeName('\u212Aubernetes.IO')).toBe('\u212Aubernetes.io');
  });
});

describe('parseQuery', () => {
  it('returns id, flags (QR clear) and the question as asked, decoded and on the wire', () => {
    const buf = query('API.GitHub.com', { id: 0xbeef, type: 'AAAA' });
    const q = parseQuery(buf);
    expect(q).toEqual({ id: 0xbeef, flags: RD, question: { name: 'API.GitHub.com', type: 'AAAA', class: 'IN' }, questionWire: buf.subarray(12) });
  });

  it('takes the question section only, not what follows it (EDNS)', () => {
    const opt = { name: '.', type: 'OPT', udpPayloadSize: 1232, flags: 0, options: [] } as unknown as Rr;
    const plain = query('example.com');
    const withEdns = dnsPacket.encode({ id: 1, type: 'query', flags: RD, questions: [{ name: 'example.com', type: 'A', class: 'IN' }], additionals: [opt] });
    expect(parseQuery(withEdns).questionWire).toEqual(plain.subarray(12));
  });

  const header = (flags: number, qdcount: number): Buffer => {
    const b = Buffer.alloc(12);
    b.writeUInt16BE(7, 0);
    b.writeUInt16BE(flags, 2);
    b.writeUInt16BE(qdcount, 4);
    return b;
  };
  const withOpcode = (opcode: number): Buffer => {
    const b = query('example.com');
    b.writeUInt16BE((b.readUInt16BE(2) & ~0x7800) | (opcode << 11), 2);
    return b;
  };

  it.each([
    ['empty', Buffer.alloc(0)],
    ['shorter than a header', Buffer.alloc(11)],
    ['a bare header claiming 65535 records in every section', Buffer.from('000101000001ffffffffffff', 'hex')],
    ['a response (QR set)', response('example.com', [a('example.com', '192.0.2.1')])],
    ['no question', header(0, 0)],
    ['a question count with no question behind it', header(0, 1)],
    ['two questions', dnsPacket.encode({ type: 'query', questions: [{ name: 'a.example', type: 'A' }, { name: 'b.example', type: 'A' }] })],
    ['opcode NOTIFY', withOpcode(4)],
    ['opcode UPDATE', withOpcode(5)],
    ['truncated inside the question', query('example.com').subarray(0, 20)],
    ['a compressed question name (pointing into the header)', Buffer.from('000101000001000000000000c00400010001', 'hex')],
  ])('rejects %s with MalformedError', (_what, buf) => {
    let caught: unknown;
    try {
      parseQuery(buf);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(MalformedError);
    expect((caught as Error).name).toBe('MalformedError');
  });
});

describe('parseResponse', () => {
  it('returns id, rcode and the question', () => {
    const r = parseResponse(response('Example.COM', [], { id: 9, rcode: RCODE_NXDOMAIN }));
    expect(r).toMatchObject({ id: 9, rcode: RCODE_NXDOMAIN, question: { name: 'Example.COM', type: 'A', class: 'IN' } });
  });

  it('has no question unless there is exactly one', () => {
    const two = dnsPacket.encode({ type: 'response', questions: [{ name: 'a.example', type: 'A' }, { name: 'b.example', type: 'A' }] });
    expect(parseResponse(two).question).toBeUndefined();
    expect(parseResponse(dnsPacket.encode({ type: 'response', questions: [] })).question).toBeUndefined();
  });

  it('accepts a packet whose records are as small as records get (the section-count precheck is exact)', () => {
    // Root-named questions and records with no data: 5 and 11 bytes, the least the wire allows.
    const opt = { name: '.', type: 'OPT', udpPayloadSize: 1232, flags: 0, options: [] } as unknown as Rr;
    const buf = dnsPacket.encode({ type: 'response', questions: [{ name: '.', type: 'NS', class: 'IN' }], additionals: [opt, opt, opt] });
    expect(buf.length).toBe(12 + 5 + 3 * 11);
    expect(parseResponse(buf).question).toEqual({ name: '.', type: 'NS', class: 'IN' });
    buf.writeUInt16BE(4, 10); // one more record than there are bytes for
    expect(() => parseResponse(buf)).toThrow(MalformedError);
  });

  it.each([
    ['an A record cut short', response('example.com', [a('example.com', '203.0.113.66')]).subarray(0, -1)],
    ['an AAAA record cut short', response('example.com', [a('example.com', '192.0.2.1'), aaaa('example.com', '2001:db8::1')]).subarray(0, -1)],
    ['a TXT record whose data runs past the end', (() => {
      const b = response('example.com', [{ name: 'example.com', type: 'TXT', ttl: 60, data: ['hello'] }]);
      b.writeUInt16BE(200, b.length - 8); // rdlength
      return b;
    })()],
  ])('rejects %s instead of decoding wrong data', (_what, buf) => {
    // dns-packet alone decodes these as "203.0.113.undefined", "2001:db8::" and a TXT of garbage.
    expect(() => parseResponse(buf)).toThrow(MalformedError);
  });

  it.each([
    ['an A record with 8 bytes of data', 'A', 4, '203.0.113.66'],
    ['an AAAA record with 20 bytes of data', 'AAAA', 4, '2001:db8::1'],
    ['a CNAME whose name ends before its data does', 'CNAME', 2, 'target.example.com'],
  ] as const)('rejects %s: a stub resolver would read it otherwise', (_what, type, extra, data) => {
    // Grow RDLENGTH (the 2 bytes before the record data, at the end) and append the extra bytes.
    const good = response('example.com', [{ name: 'example.com', type, ttl: 60, data } as Rr]);
    expect(() => parseResponse(good)).not.toThrow();
    const dataLen = type === 'A' ? 4 : type === 'AAAA' ? 16 : good.length - good.lastIndexOf(Buffer.from([0, 60])) - 4;
    const bad = Buffer.concat([good, Buffer.alloc(extra, 7)]);
    bad.writeUInt16BE(dataLen + extra, good.length - dataLen - 2);
    expect(() => parseResponse(bad)).toThrow(MalformedError);
  });

  it.each([
    ['a query (QR clear)', query('example.com')],
    ['a truncated answer', response('example.com', [a('example.com', '192.0.2.1')]).subarray(0, 40)],
    ['11 bytes', Buffer.alloc(11, 0x80)],
  ])('rejects %s with MalformedError', (_what, buf) => {
    expect(() => parseResponse(buf)).toThrow(MalformedError);
  });
});

describe('learnFrom', () => {
  it('learns A and AAAA of the question name with their TTLs', () => {
    expect(learn(response('example.com', [a('example.com', '192.0.2.1', 60), aaaa('example.com', '2001:db8::1', 120)]))).toEqual({
      names: ['example.com'],
      addresses: [
        { ip: '192.0.2.1', ttl: 60 },
        { ip: '2001:db8::1', ttl: 120 },
      ],
    });
  });

  it('treats a TTL with the top bit set as zero (RFC 2181 8)', () => {
    const l = learn(response('example.com', [a('example.com', '192.0.2.1', 0x80000000), a('example.com', '192.0.2.2', 0x7fffffff)]));
    expect(l.addresses).toEqual([
      { ip: '192.0.2.1', ttl: 0 },
      { ip: '192.0.2.2', ttl: 0x7fffffff },
    ]);
  });

  it('follows a CNAME chain in chain order, whatever order the answers come in', () => {
    const rrs = [cname('www.example.com', 'edge.cdn.example'), cname('edge.cdn.example', 'pop7.cdn.example'), a('pop7.cdn.example', '192.0.2.7'), a('pop7.cdn.example', '192.0.2.8')];
    const orders = permutations(rrs);
    expect(orders).toHaveLength(24);
    for (const order of orders) {
      const l = learn(response('www.example.com', order));
      expect(l.names).toEqual(['www.example.com', 'edge.cdn.example', 'pop7.cdn.example']);
      expect(l.addresses.map((x) => x.ip).sort()).toEqual(['192.0.2.7', '192.0.2.8']);
    }
  });

  it('follows up to 16 CNAMEs and stops there', () => {
    const hop = (i: number) => `n${i}.example`;
    const chain = (cnames: number): Rr[] => [...Array.from({ length: cnames }, (_, i) => cname(hop(i), hop(i + 1))), a(hop(cnames), '192.0.2.16')].reverse();

    const sixteen = learn(response(hop(0), chain(16)));
    expect(sixteen.names).toEqual(Array.from({ length: 17 }, (_, i) => hop(i)));
    expect(sixteen.addresses).toEqual([{ ip: '192.0.2.16', ttl: 300 }]);

    // The 17th hop is not followed, so the address its target owns is not learned.
    const seventeen = learn(response(hop(0), chain(17)));
    expect(seventeen.names).toEqual(Array.from({ length: 17 }, (_, i) => hop(i)));
    expect(seventeen.addresses).toEqual([]);
  });

  it('stops at a CNAME loop', () => {
    const l = learn(response('a.example', [cname('a.example', 'b.example'), cname('b.example', 'A.example.'), a('b.example', '192.0.2.2')]));
    expect(l).toEqual({ names: ['a.example', 'b.example'], addresses: [{ ip: '192.0.2.2', ttl: 300 }] });
    expect(learn(response('self.example', [cname('self.example', 'self.example')])).names).toEqual(['self.example']);
  });

  it('ignores a chain that does not start at the question name', () => {
    const l = learn(response('asked.example', [cname('other.example', 'target.example'), a('target.example', '198.51.100.1')]));
    expect(l).toEqual({ names: ['asked.example'], addresses: [] });
  });

  it('never learns answers for names outside the chain', () => {
    const l = learn(
      response('api.github.com', [
        a('api.github.com', '140.82.112.5'),
        a('evil.example', '203.0.113.66'),
        cname('evil.example', 'api.github.com'), // points INTO the chain; still not part of it
        aaaa('sub.api.github.com', '2001:db8::66'),
      ]),
    );
    expect(l).toEqual({ names: ['api.github.com'], addresses: [{ ip: '140.82.112.5', ttl: 300 }] });
  });

  it('learns from the answer section only (not authority or additional records)', () => {
    const l = learn(
      response('api.github.com', [a('api.github.com', '140.82.112.5')], {
        authorities: [a('api.github.com', '203.0.113.1')],
        additionals: [a('api.github.com', '203.0.113.2')],
      }),
    );
    expect(l.addresses).toEqual([{ ip: '140.82.112.5', ttl: 300 }]);
  });

  it('learns both names of a CoreDNS autopath answer', () => {
    const asked = 'api.github.com.ns.svc.cluster.local';
    const l = learn(response(asked, [cname(asked, 'api.github.com'), a('api.github.com', '140.82.112.5', 30)]));
    expect(l).toEqual({ names: [asked, 'api.github.com'], addresses: [{ ip: '140.82.112.5', ttl: 30 }] });
  });

  it('matches chain names case-insensitively and returns them lower case, without trailing dot', () => {
    const l = learn(response('WWW.Example.COM.', [cname('www.example.com', 'CDN.Example.NET.'), a('cdn.EXAMPLE.net', '192.0.2.9')]));
    expect(l).toEqual({ names: ['www.example.com', 'cdn.example.net'], addresses: [{ ip: '192.0.2.9', ttl: 300 }] });
  });

  it('keeps the Kelvin sign distinct from "k" in learned names (its UTF-8 bytes, escaped)', () => {
    const l = learn(response('\u212Aubernetes.io', [a('\u212Aubernetes.io', '203.0.113.9')]));
    expect(l.names).toEqual(['\\226\\132\\170ubernetes.io']);
  });

  it('gives each address its own record TTL, not the minimum over the chain', () => {
    // Documented behaviour: the A/AAAA record's TTL. A CNAME with a shorter TTL does not shorten it.
    const l = learn(response('www.example.com', [cname('www.example.com', 'cdn.example.net', 5), a('cdn.example.net', '192.0.2.9', 600), a('cdn.example.net', '192.0.2.10', 0)]));
    expect(l.addresses).toEqual([
      { ip: '192.0.2.9', ttl: 600 },
      { ip: '192.0.2.10', ttl: 0 },
    ]);
  });

  it.each([
    ['NXDOMAIN', RCODE_NXDOMAIN],
    ['SERVFAIL', RCODE_SERVFAIL],
    ['REFUSED', RCODE_REFUSED],
  ])('learns nothing from a %s answer, even with records in it', (_what, rcode) => {
    expect(learn(response('example.com', [a('example.com', '192.0.2.1')], { rcode }))).toEqual({ names: [], addresses: [] });
  });

  it('learns nothing without a question', () => {
    const buf = dnsPacket.encode({ type: 'response', questions: [], answers: [a('example.com', '192.0.2.1')] });
    expect(learn(buf)).toEqual({ names: [], addresses: [] });
  });
});

describe('errorResponse', () => {
  it.each([
    ['REFUSED', RCODE_REFUSED, 'REFUSED'],
    ['SERVFAIL', RCODE_SERVFAIL, 'SERVFAIL'],
  ])('%s keeps the id and question, sets QR and copies RD', (_what, rcode, rcodeName) => {
    const q = parseQuery(query('API.GitHub.com', { id: 0xfade, type: 'AAAA' }));
    const r = dnsPacket.decode(errorResponse(q, rcode));
    expect(r).toMatchObject({ id: 0xfade, type: 'response', flag_qr: true, flag_rd: true, rcode: rcodeName, opcode: 'QUERY' });
    expect(r.questions).toEqual([{ name: 'API.GitHub.com', type: 'AAAA', class: 'IN' }]);
    expect(r.answers).toEqual([]);
  });

  it('echoes the question byte for byte, even one dns-packet cannot encode back', () => {
    // A 63-byte label of 0xff bytes (each decodes to a 3-byte U+FFFD) and class 999.
    const name = Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0xff), Buffer.from([3]), Buffer.from('com'), Buffer.from([0])]);
    const buf = Buffer.concat([Buffer.from('abcd0100000100000000000000', 'hex').subarray(0, 12), name, Buffer.from([0, 1, 0x03, 0xe7])]);
    const q = parseQuery(buf);
    expect(q.question.class).toBe('UNKNOWN_999');
    const r = errorResponse(q, RCODE_REFUSED);
    expect(r.subarray(12)).toEqual(buf.subarray(12));
    expect(dnsPacket.decode(r)).toMatchObject({ id: 0xabcd, type: 'response', rcode: 'REFUSED' });
  });

  it('leaves RD clear when the query had it clear', () => {
    const q = parseQuery(query('example.com', { flags: 0 }));
    expect(dnsPacket.decode(errorResponse(q, RCODE_REFUSED)).flag_rd).toBe(false);
  });

  it('answers with no question from a bare header', () => {
    const h = headerOf(query('example.com', { id: 77 }))!;
    const r = dnsPacket.decode(errorResponse(h, 1 /* FORMERR */));
    expect(r).toMatchObject({ id: 77, type: 'response', rcode: 'FORMERR' });
    expect(r.questions).toEqual([]);
    expect(headerOf(Buffer.alloc(11))).toBeUndefined();
  });
});

describe('sameQuestion', () => {
  const q: Question = { name: 'api.github.com', type: 'A', class: 'IN' };
  it.each<[string, Question | undefined, boolean]>([
    ['identical', { ...q }, true],
    ['different case and a trailing dot', { ...q, name: 'API.GitHub.COM.' }, true],
    ['another name', { ...q, name: 'api.github.com.evil.example' }, false],
    ['another type', { ...q, type: 'AAAA' }, false],
    ['another class', { ...q, class: 'CH' }, false],
    ['no question', undefined, false],
  ])('%s → %s', (_what, other, same) => {
    expect(sameQuestion(q, other)).toBe(same);
  });

  it('does not fold non-ASCII letters', () => {
    expect(sameQuestion({ name: 'kubernetes.io', type: 'A', class: 'IN' }, { name: '\u212Aubernetes.io', type: 'A', class: 'IN' })).toBe(false);
  });
});

// ------------------------------------------------------------------ names, label by label
//
// dns-packet cannot write a label holding a dot (it splits on every '.'), so
// these packets are built byte by byte.

/** A wire name from its labels, each given as a string of bytes (latin1) or a Buffer. */
function wire(...labels: Array<string | Buffer>): Buffer {
  const parts = labels.map((l) => (typeof l === 'string' ? Buffer.from(l, 'latin1') : l));
  return Buffer.concat([...parts.flatMap((l) => [Buffer.from([l.length]), l]), Buffer.from([0])]);
}

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const TYPE_A = 1;
const TYPE_CNAME = 5;

interface RawRr {
  owner: Buffer;
  type: number;
  /** An IPv4 address, or a wire name for CNAME. */
  data: string | Buffer;
}

function rawRecord(rr: RawRr): Buffer {
  const data = typeof rr.data === 'string' ? Buffer.from(rr.data.split('.').map(Number)) : rr.data;
  return Buffer.concat([rr.owner, u16(rr.type), u16(1), Buffer.from([0, 0, 1, 44]) /* TTL 300 */, u16(data.length), data]);
}

function rawQuery(qname: Buffer, id = 0x4242): Buffer {
  return Buffer.concat([u16(id), u16(RD), u16(1), u16(0), u16(0), u16(0), qname, u16(TYPE_A), u16(1)]);
}

function rawResponse(qname: Buffer, answers: RawRr[], id = 0x4242): Buffer {
  const header = Buffer.concat([u16(id), u16(0x8000 | RD | dnsPacket.RECURSION_AVAILABLE), u16(1), u16(answers.length), u16(0), u16(0)]);
  return Buffer.concat([header, qname, u16(TYPE_A), u16(1), ...answers.map(rawRecord)]);
}

/** A pointer to offset 12: the question name. */
const TO_QUESTION = Buffer.from([0xc0, 12]);

describe('names are read label by label, in presentation format', () => {
  it('tells a label holding a dot from two labels (dns-packet reads both as "dot.example.test")', () => {
    expect(parseQuery(rawQuery(wire('dot.example', 'test'))).question.name).toBe('dot\\.example.test');
    expect(parseQuery(rawQuery(wire('dot', 'example', 'test'))).question.name).toBe('dot.example.test');
    expect(parseResponse(rawResponse(wire('dot.example', 'test'), [])).question?.name).toBe('dot\\.example.test');
  });

  it.each<[string, Array<string | Buffer>, string]>([
    ['a backslash', ['back\\slash', 'test'], 'back\\\\slash.test'],
    ['a space and a control byte', ['a b\x00', 'test'], 'a\\032b\\000.test'],
    ['bytes that are not UTF-8 (not all U+FFFD)', [Buffer.from([0xfe]), Buffer.from([0xff]), 'test'], '\\254.\\255.test'],
    ["dig's specials", ['"();@$', 'test'], '\\"\\(\\)\\;\\@\\$.test'],
    ['case, kept as asked', ['API', 'GitHub', 'com'], 'API.GitHub.com'],
    ['a label that is only a dot', ['.', 'test'], '\\..test'],
    ['the root', [], '.'],
  ])('escapes %s', (_what, labels, text) => {
    expect(parseQuery(rawQuery(wire(...labels))).question.name).toBe(text);
  });

  it('does not take a question with other label boundaries for the same question (spoofing by relabelling)', () => {
    const asked = parseQuery(rawQuery(wire('dot', 'example', 'test'))).question;
    expect(sameQuestion(asked, parseResponse(rawResponse(wire('dot.example', 'test'), [])).question)).toBe(false);
    expect(sameQuestion(asked, parseResponse(rawResponse(wire('DOT', 'example', 'TEST'), [])).question)).toBe(true);
    const odd = parseQuery(rawQuery(wire(Buffer.from([0xfe]), 'test'))).question;
    expect(sameQuestion(odd, parseResponse(rawResponse(wire(Buffer.from([0xff]), 'test'), [])).question)).toBe(false);
  });

  it('learns an escaped name as itself, never as the name with other label boundaries', () => {
    const l = learn(rawResponse(wire('dot.example', 'test'), [{ owner: TO_QUESTION, type: TYPE_A, data: '203.0.113.66' }]));
    expect(l).toEqual({ names: ['dot\\.example.test'], addresses: [{ ip: '203.0.113.66', ttl: 300 }] });
  });

  it('walks the CNAME chain by labels: a target with other boundaries owns none of the addresses of the look-alike', () => {
    const res = rawResponse(wire('www', 'example', 'test'), [
      { owner: TO_QUESTION, type: TYPE_CNAME, data: wire('dot.example', 'test') },
      { owner: wire('dot', 'example', 'test'), type: TYPE_A, data: '192.0.2.1' },
      { owner: wire('dot.example', 'test'), type: TYPE_A, data: '203.0.113.66' },
    ]);
    expect(learn(res)).toEqual({ names: ['www.example.test', 'dot\\.example.test'], addresses: [{ ip: '203.0.113.66', ttl: 300 }] });
  });

  it('does not follow a CNAME to the look-alike of the question name (its owner has other boundaries)', () => {
    const res = rawResponse(wire('dot', 'example', 'test'), [
      { owner: wire('dot.example', 'test'), type: TYPE_CNAME, data: wire('evil', 'test') },
      { owner: wire('evil', 'test'), type: TYPE_A, data: '203.0.113.66' },
    ]);
    expect(learn(res)).toEqual({ names: ['dot.example.test'], addresses: [] });
  });

  it('follows compression pointers into escaped labels', () => {
    // The CNAME target is "cdn" + a pointer to the question's second label onwards ("b.c", "test").
    const qname = wire('a', 'b.c', 'test');
    const res = rawResponse(qname, [
      { owner: TO_QUESTION, type: TYPE_CNAME, data: Buffer.concat([Buffer.from([3]), Buffer.from('cdn'), Buffer.from([0xc0, 12 + 2])]) },
      { owner: Buffer.concat([Buffer.from([3]), Buffer.from('cdn'), Buffer.from([0xc0, 12 + 2])]), type: TYPE_A, data: '192.0.2.9' },
    ]);
    expect(learn(res)).toEqual({ names: ['a.b\\.c.test', 'cdn.b\\.c.test'], addresses: [{ ip: '192.0.2.9', ttl: 300 }] });
  });

  it('reads owners that point at the question name (as servers compress them) on the quick path as the general path does', () => {
    const qname = wire('www', 'Example', 'test');
    const cdn = Buffer.concat([Buffer.from([3]), Buffer.from('cdn'), TO_QUESTION]);
    const res = rawResponse(qname, [
      { owner: TO_QUESTION, type: TYPE_CNAME, data: cdn },
      { owner: TO_QUESTION, type: TYPE_A, data: '192.0.2.1' },
      { owner: Buffer.from([0xc0, 12 + qname.length + 4 + 12]) /* the CNAME's target */, type: TYPE_A, data: '10.0.200.9' },
      { owner: TO_QUESTION, type: TYPE_A, data: '0.0.0.255' },
    ]);
    const quick = quickResponse(res);
    expect(quick).toBeDefined();
    expect(quick).toEqual(parseResponseGeneral(res));
    expect(quick!.answers.map((rr) => [rr.name, rr.data])).toEqual([
      ['www.Example.test', 'cdn.www.Example.test'],
      ['www.Example.test', '192.0.2.1'],
      ['cdn.www.Example.test', '10.0.200.9'],
      ['www.Example.test', '0.0.0.255'],
    ]);
    // A pointer to the question name that runs past the end is the general path's to judge.
    const cut = res.subarray(0, 12 + qname.length + 4 + 1);
    expect(quickResponse(cut)).toBeUndefined();
  });

  it('rejects a CNAME whose target loops through pointers, as dns-packet does', () => {
    const res = rawResponse(wire('a', 'test'), [{ owner: TO_QUESTION, type: TYPE_CNAME, data: Buffer.from([0xc0, 12 + 8 + 4 + 12]) /* itself: header, question name, type and class, owner pointer and fixed fields */ }]);
    expect(() => parseResponse(res)).toThrow(MalformedError);
  });
});
