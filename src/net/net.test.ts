import { describe, expect, it } from 'vitest';
import {
  addressFromBytes,
  addressToBytes,
  bits,
  canonicalIp,
  cidrContains,
  cidrSize,
  cidrWithin,
  CidrError,
  familyOf,
  formatIp,
  hostCidr,
  ipv4Number,
  ipv4Text,
  Ipv4Texts,
  parseCidr,
  parseIp,
} from './index.js';

describe('parseIp / formatIp', () => {
  it('parses IPv4 to its 32-bit value and back', () => {
    expect(parseIp('10.244.1.7')).toEqual({ family: 4, value: 0x0af40107n });
    expect(parseIp('0.0.0.0')).toEqual({ family: 4, value: 0n });
    expect(parseIp('255.255.255.255')).toEqual({ family: 4, value: 0xffffffffn });
    expect(formatIp(4, 0x0af40107n)).toBe('10.244.1.7');
    expect(formatIp(4, 0xffffffffn)).toBe('255.255.255.255');
  });

  it('parses every IPv6 text form to the same value', () => {
    const want = 0x20010db8000000000000000000000001n;
    for (const text of ['2001:db8::1', '2001:DB8::1', '2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8:0:0:0:0:0:1', '2001:db8::0:1']) {
      expect(parseIp(text), text).toEqual({ family: 6, value: want });
    }
    expect(parseIp('::')).toEqual({ family: 6, value: 0n });
    expect(parseIp('::1')).toEqual({ family: 6, value: 1n });
    expect(parseIp('fe80::')).toEqual({ family: 6, value: 0xfe80n << 112n });
    expect(parseIp('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')).toEqual({ family: 6, value: (1n << 128n) - 1n });
  });

  it('reads an embedded dotted quad as the last 32 bits', () => {
    expect(parseIp('::ffff:10.0.0.1')).toEqual({ family: 6, value: 0xffff0a000001n });
    expect(parseIp('64:ff9b::192.0.2.33')).toEqual({ family: 6, value: (0x64ff9bn << 96n) | 0xc0000221n });
    // Mapped addresses stay IPv6 (never silently turned into IPv4) and print in hex.
    expect(canonicalIp('::ffff:10.0.0.1')).toBe('::ffff:a00:1');
  });

  it.each([
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // two equal runs: the first is compressed
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // the longer run wins
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'], // a single zero group is never compressed
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['0:0:1:0:0:0:0:0', '0:0:1::'],
    ['FD00:0000:0000:0000:0000:0000:0000:0102', 'fd00::102'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ])('canonical IPv6 text of %s is %s', (input, want) => {
    expect(canonicalIp(input)).toBe(want);
    // And the canonical text is a fixed point.
    expect(canonicalIp(want)).toBe(want);
  });

  it.each(['', '10.0.0', '10.0.0.256', '10.0.0.1.2', '010.0.0.1', ' 10.0.0.1', '1::2::3', '1:2:3:4:5:6:7:8:9', '::g', 'example.com', '10.0.0.0/8'])(
    'rejects %j with a CidrError naming the input',
    (text) => {
      const err = (() => {
        try {
          parseIp(text);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(CidrError);
      expect((err as CidrError).code).toBe('SLUICE_INVALID_CIDR');
      expect((err as CidrError).message).toBe(`not an IP address: ${JSON.stringify(text)}`);
    },
  );

  it('answers family and width', () => {
    expect(familyOf('10.0.0.1')).toBe(4);
    expect(familyOf('fd00::1')).toBe(6);
    expect(familyOf('::ffff:10.0.0.1')).toBe(6);
    expect(familyOf('10.0.0.256')).toBe(0);
    expect(familyOf('')).toBe(0);
    expect(bits(4)).toBe(32);
    expect(bits(6)).toBe(128);
  });
});

describe('parseCidr', () => {
  it('normalizes: host bits cleared, canonical text', () => {
    expect(parseCidr('10.244.1.77/24')).toEqual({ family: 4, base: 0x0af40100n, prefixLen: 24, text: '10.244.1.0/24' });
    expect(parseCidr('10.255.255.255/8').text).toBe('10.0.0.0/8');
    expect(parseCidr('FD00:0:0:0::1:2/64')).toEqual({ family: 6, base: 0xfd00n << 112n, prefixLen: 64, text: 'fd00::/64' });
    expect(parseCidr('2001:db8:0:0:1:0:0:1/128').text).toBe('2001:db8::1:0:0:1/128');
    expect(parseCidr('::ffff:10.0.0.0/104').text).toBe('::ffff:a00:0/104');
  });

  it('handles the edges: /0, /32, /128', () => {
    expect(parseCidr('1.2.3.4/0')).toEqual({ family: 4, base: 0n, prefixLen: 0, text: '0.0.0.0/0' });
    expect(parseCidr('fd00::1/0')).toEqual({ family: 6, base: 0n, prefixLen: 0, text: '::/0' });
    expect(parseCidr('10.0.0.1/32')).toEqual({ family: 4, base: 0x0a000001n, prefixLen: 32, text: '10.0.0.1/32' });
    expect(parseCidr('fd00::1/128')).toEqual({ family: 6, base: (0xfd00n << 112n) | 1n, prefixLen: 128, text: 'fd00::1/128' });
    expect(cidrSize(parseCidr('0.0.0.0/0'))).toBe(1n << 32n);
    expect(cidrSize(parseCidr('::/0'))).toBe(1n << 128n);
    expect(cidrSize(parseCidr('10.0.0.1/32'))).toBe(1n);
    expect(cidrSize(parseCidr('fd00::1/128'))).toBe(1n);
    expect(cidrSize(parseCidr('10.244.0.0/16'))).toBe(65536n);
  });

  it.each([
    ['10.0.0.0', 'not a CIDR (missing /prefix): "10.0.0.0"'],
    ['10.0.0.0/33', 'invalid prefix length in "10.0.0.0/33"'],
    ['fd00::/129', 'invalid prefix length in "fd00::/129"'],
    ['10.0.0.0/', 'invalid prefix length in "10.0.0.0/"'],
    ['10.0.0.0/-1', 'invalid prefix length in "10.0.0.0/-1"'],
    ['10.0.0.0/8.0', 'invalid prefix length in "10.0.0.0/8.0"'],
    ['10.0.0.0/ 8', 'invalid prefix length in "10.0.0.0/ 8"'],
    ['10.0.0.0/0008', 'invalid prefix length in "10.0.0.0/0008"'],
    ['10.0.0.0/8/8', 'invalid prefix length in "10.0.0.0/8/8"'],
    ['10.0.0.300/8', 'not an IP address: "10.0.0.300"'],
    ['/8', 'not an IP address: ""'],
  ])('rejects %j: %s', (text, message) => {
    expect(() => parseCidr(text)).toThrow(CidrError);
    expect(() => parseCidr(text)).toThrow(message);
  });
});

describe('containment', () => {
  const c = (t: string) => parseCidr(t);
  const ip = (t: string) => {
    const { family, value } = parseIp(t);
    return [family, value] as const;
  };

  it('cidrContains: inclusive of the network and last address, nothing past them', () => {
    const net = c('10.244.1.0/24');
    expect(cidrContains(net, ...ip('10.244.1.0'))).toBe(true);
    expect(cidrContains(net, ...ip('10.244.1.255'))).toBe(true);
    expect(cidrContains(net, ...ip('10.244.0.255'))).toBe(false);
    expect(cidrContains(net, ...ip('10.244.2.0'))).toBe(false);
    expect(cidrContains(c('0.0.0.0/0'), ...ip('255.255.255.255'))).toBe(true);
    expect(cidrContains(c('::/0'), ...ip('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'))).toBe(true);
    expect(cidrContains(c('10.0.0.1/32'), ...ip('10.0.0.1'))).toBe(true);
    expect(cidrContains(c('10.0.0.1/32'), ...ip('10.0.0.2'))).toBe(false);
    expect(cidrContains(c('fd00::1/128'), ...ip('fd00::1'))).toBe(true);
    expect(cidrContains(c('fd00::1/128'), ...ip('fd00::'))).toBe(false);
  });

  it('never across families (the same number is not the same address)', () => {
    expect(cidrContains(c('0.0.0.0/0'), ...ip('::1'))).toBe(false);
    expect(cidrContains(c('::/0'), ...ip('0.0.0.1'))).toBe(false);
    // ::ffff:10.0.0.1 is IPv6; an IPv4 block does not match it.
    expect(cidrContains(c('10.0.0.0/8'), ...ip('::ffff:10.0.0.1'))).toBe(false);
    expect(cidrWithin(c('::/96'), c('0.0.0.0/0'))).toBe(false);
    expect(cidrWithin(c('0.0.0.0/0'), c('::/0'))).toBe(false);
  });

  it('cidrWithin is a ⊆ b', () => {
    expect(cidrWithin(c('10.1.0.0/16'), c('10.0.0.0/8'))).toBe(true);
    expect(cidrWithin(c('10.0.0.0/8'), c('10.0.0.0/8'))).toBe(true); // equal sets
    expect(cidrWithin(c('10.0.0.0/8'), c('10.1.0.0/16'))).toBe(false); // superset is not within
    expect(cidrWithin(c('11.0.0.0/16'), c('10.0.0.0/8'))).toBe(false); // disjoint
    expect(cidrWithin(c('10.0.0.0/7'), c('10.0.0.0/8'))).toBe(false); // shorter, same base
    expect(cidrWithin(c('11.0.0.0/8'), c('10.0.0.0/7'))).toBe(true); // 10.0.0.0/7 covers 10/8 and 11/8
    expect(cidrWithin(c('12.0.0.0/8'), c('10.0.0.0/7'))).toBe(false);
    expect(cidrWithin(c('255.255.255.255/32'), c('0.0.0.0/0'))).toBe(true);
    expect(cidrWithin(c('0.0.0.0/0'), c('0.0.0.0/0'))).toBe(true);
    expect(cidrWithin(c('0.0.0.0/0'), c('0.0.0.0/1'))).toBe(false);
    expect(cidrWithin(c('10.0.0.1/32'), c('10.0.0.1/32'))).toBe(true);
    expect(cidrWithin(c('10.0.0.1/32'), c('10.0.0.0/32'))).toBe(false);
    expect(cidrWithin(c('fd00::1/128'), c('fd00::/64'))).toBe(true);
    expect(cidrWithin(c('fd00:0:0:1::/64'), c('fd00::/64'))).toBe(false);
    expect(cidrWithin(c('fd00::/8'), c('::/0'))).toBe(true);
    expect(cidrWithin(c('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128'), c('::/0'))).toBe(true);
    expect(cidrWithin(c('::/0'), c('::/0'))).toBe(true);
  });

  it('hostCidr is the /32 or /128 of an address', () => {
    expect(hostCidr('10.0.0.7').text).toBe('10.0.0.7/32');
    expect(hostCidr('FD00:0::7').text).toBe('fd00::7/128');
    expect(() => hostCidr('10.0.0.256')).toThrow(CidrError);
    expect(cidrWithin(hostCidr('10.0.0.7'), c('10.0.0.0/29'))).toBe(true);
    expect(cidrWithin(hostCidr('10.0.0.8'), c('10.0.0.0/29'))).toBe(false);
  });
});

describe('the datapath layout: 16 bytes, network order, IPv4 in the first 4', () => {
  it('writes IPv4 into the first 4 bytes, leaving the rest alone', () => {
    const buf = Buffer.alloc(20, 0xee);
    addressToBytes(4, '10.244.1.7', buf, 2);
    expect(buf.toString('hex')).toBe('eeee' + '0af40107' + 'ee'.repeat(14));
    expect(addressFromBytes(4, buf, 2)).toBe('10.244.1.7');
  });

  it('writes IPv6 in network order and reads it back canonical', () => {
    const buf = Buffer.alloc(16);
    addressToBytes(6, '2001:DB8:0:0:1:0:0:1', buf, 0);
    expect(buf.toString('hex')).toBe('20010db8000000000001000000000001');
    expect(addressFromBytes(6, buf, 0)).toBe('2001:db8::1:0:0:1');
    addressToBytes(6, '::ffff:10.0.0.1', buf, 0);
    expect(buf.toString('hex')).toBe('00000000000000000000ffff0a000001');
  });

  it("'' leaves the slot untouched; an unknown family reads as ''", () => {
    const buf = Buffer.alloc(16, 0xab);
    addressToBytes(6, '', buf, 0);
    expect(buf.equals(Buffer.alloc(16, 0xab))).toBe(true);
    expect(addressFromBytes(0, buf, 0)).toBe('');
    expect(addressFromBytes(7, buf, 0)).toBe('');
  });

  it('IPv4 without bigints (the DNS proxy path) agrees with parseIp / formatIp, and a refused text writes nothing', () => {
    const texts = ['0.0.0.0', '255.255.255.255', '10.0.0.10', '1.2.3.04', '01.2.3.4', '1.2.3', '1.2.3.4.5', '1..3.4', ' 1.2.3.4', '1.2.3.256', '1.2.3.-4', 'a.b.c.d', '::1', '1.2.3.4 '];
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    for (let i = 0; i < 20_000; i++) texts.push(Array.from({ length: 3 + rnd(3) }, () => (rnd(10) ? String(rnd(300)) : `0${rnd(30)}`)).join('.'));
    for (const text of texts) {
      const got = Buffer.alloc(4, 0xee);
      let err: unknown;
      try {
        addressToBytes(4, text, got, 0);
      } catch (e) {
        err = e;
      }
      if (familyOf(text) === 4) {
        expect(err).toBeUndefined();
        expect(got.readUInt32BE(0)).toBe(Number(parseIp(text).value));
      } else {
        expect(err).toEqual(new TypeError(`not an IPv4 address: ${text}`));
        expect(got.equals(Buffer.alloc(4, 0xee))).toBe(true);
      }
    }
    for (let i = 0; i < 2_000; i++) {
      const b = Buffer.from([rnd(256), rnd(256), rnd(256), rnd(256)]);
      expect(addressFromBytes(4, b, 0)).toBe(formatIp(4, BigInt(b.readUInt32BE(0))));
    }
  });

  it('a wrong family or garbage is a TypeError naming the address', () => {
    const buf = Buffer.alloc(16);
    expect(() => addressToBytes(4, 'fd00::1', buf, 0)).toThrow(new TypeError('not an IPv4 address: fd00::1'));
    expect(() => addressToBytes(6, '10.0.0.1', buf, 0)).toThrow(new TypeError('not an IPv6 address: 10.0.0.1'));
    expect(() => addressToBytes(4, 'bogus', buf, 0)).toThrow(TypeError);
    expect(buf.equals(Buffer.alloc(16))).toBe(true);
  });

  it('round-trips every byte value in every position', () => {
    const buf = Buffer.alloc(16);
    for (let i = 0; i < 256; i++) {
      const a = Buffer.alloc(16);
      for (let j = 0; j < 16; j++) a[j] = (i + j * 17) & 0xff;
      const text = addressFromBytes(6, a, 0);
      addressToBytes(6, text, buf, 0);
      expect(buf.equals(a), text).toBe(true);
    }
  });

  it('IPv4 text and numbers (ipv4Text, ipv4Number): each the other\'s inverse, -1 for anything else', () => {
    for (const text of ['0.0.0.0', '127.0.0.1', '10.128.3.255', '255.255.255.255', '192.0.2.10']) {
      expect(ipv4Text(ipv4Number(text))).toBe(text);
    }
    expect(ipv4Number('127.0.0.1')).toBe(0x7f000001);
    expect(ipv4Number('255.255.255.255')).toBe(0xffffffff);
    for (const other of ['::1', '2001:db8::5', '127.0.0', '127.0.0.1.1', '1.2.3.256', '01.2.3.4', '1..2.3', '1.2.3.', '', 'a.b.c.d', '1.2.3.4 ']) {
      expect(ipv4Number(other)).toBe(-1);
    }
  });

  it('Ipv4Texts: the same string each time for a number (ipv4Text\'s), and still right once full and started over', () => {
    const texts = new Ipv4Texts(2);
    const a = texts.of(0x0a000001);
    expect(a).toBe('10.0.0.1');
    expect(texts.of(0x0a000001)).toBe(a);
    expect(texts.of(0xc0000205)).toBe('192.0.2.5');
    // Full: it starts over, and still answers right.
    expect(texts.of(0x7f000001)).toBe('127.0.0.1');
    expect(texts.of(0x0a000001)).toBe('10.0.0.1');
  });
});
