import { describe, expect, it } from 'vitest';
import { formatAddress, parseAddressInto } from './address.js';

function roundTrip(family: number, addr: string): string {
  const buf = Buffer.alloc(16);
  parseAddressInto(family, addr, buf, 0);
  return formatAddress(family, buf, 0);
}

describe('address codec', () => {
  it('round-trips IPv4', () => {
    expect(roundTrip(4, '10.244.1.7')).toBe('10.244.1.7');
  });
  it.each([
    ['fd00::1', 'fd00::1'],
    ['::', '::'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['fe80::1:2:3:4', 'fe80::1:2:3:4'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ])('round-trips IPv6 %s', (input, want) => {
    expect(roundTrip(6, input)).toBe(want);
  });
  it('writes IPv6 bytes in network order', () => {
    const buf = Buffer.alloc(16);
    parseAddressInto(6, 'fd00::102', buf, 0);
    expect(buf.toString('hex')).toBe('fd000000000000000000000000000102');
  });
  it('rejects garbage', () => {
    expect(() => parseAddressInto(4, '10.0.0.256', Buffer.alloc(16), 0)).toThrow(TypeError);
    expect(() => parseAddressInto(6, '10.0.0.1', Buffer.alloc(16), 0)).toThrow(TypeError);
  });
});
