// DnsNatTable against a real hash map of sluice_dns_nat_v1's shape (made with
// bpftool, pinned for this file and removed after), through the addon's
// MapHandle as the agent reads it: find() (the proxy's, one reused key and
// result) agrees with lookup() in both families, whatever was looked up before.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scratchHashMap, type ScratchMap } from '../../test/helpers/scratch-map.js';
import { BPF_ANY, native } from '../native/index.js';
import { parseAddressInto } from './codec/address.js';
import * as dnsCodec from './codec/dns.js';
import { DnsNatTable } from './dns-nat-table.js';

const UDP = 17;
const TCP = 6;

function natValue(daddr: string, ifindex: number): Buffer {
  const v = Buffer.alloc(dnsCodec.NAT_SIZE);
  parseAddressInto(daddr.includes(':') ? 6 : 4, daddr, v, dnsCodec.NAT_OFFSETS.daddr);
  v.writeUInt16BE(53, dnsCodec.NAT_OFFSETS.dport_be);
  v.writeUInt32LE(ifindex, dnsCodec.NAT_OFFSETS.ifindex);
  return v;
}

describe.skipIf(process.getuid?.() !== 0)('DnsNatTable on a real map', () => {
  let scratch: ScratchMap | undefined;
  let fd = -1;
  let nat: DnsNatTable;

  beforeAll(() => {
    scratch = scratchHashMap('nat', dnsCodec.NAT_KEY_SIZE, dnsCodec.NAT_SIZE, 16);
    fd = scratch.fd;
    const put = (protocol: number, ip: string, port: number, daddr: string, ifindex: number) => native().mapUpdate(fd, dnsCodec.encodeNatKey(protocol, ip, port), natValue(daddr, ifindex), BPF_ANY);
    put(UDP, '10.1.0.5', 40000, '10.96.0.10', 12);
    put(UDP, '10.1.0.6', 40000, '10.96.0.10', 13);
    put(TCP, 'fd00::5', 40000, 'fd00:96::a', 14);
    put(UDP, '10.1.0.5', 40001, '192.0.2.53', 12);
    nat = new DnsNatTable(native(), fd);
  });

  afterAll(() => {
    nat?.close();
    scratch?.remove();
  });

  it('finds the flow by protocol, client address and port into one reused result, in both families', () => {
    const first = nat.find(UDP, '10.1.0.5', 40000);
    expect(first).toEqual({ daddr: '10.96.0.10', ifindex: 12 });
    // An IPv6 key fills the address bytes an IPv4 one leaves zero: the next IPv4 key must not keep them.
    expect(nat.find(TCP, 'fd00::5', 40000)).toEqual({ daddr: 'fd00:96::a', ifindex: 14 });
    expect(nat.find(UDP, '10.1.0.6', 40000)).toBe(first); // the same object, overwritten
    expect(first).toEqual({ daddr: '10.96.0.10', ifindex: 13 });
    expect(nat.find(UDP, '10.1.0.5', 40001)).toEqual({ daddr: '192.0.2.53', ifindex: 12 });
    expect(nat.find(TCP, '10.1.0.5', 40000)).toBeUndefined();
    expect(nat.find(UDP, '10.1.0.5', 40002)).toBeUndefined();
    expect(nat.find(UDP, 'fd00::5', 40000)).toBeUndefined();
  });

  it('agrees with lookup(), which returns an entry of its own', () => {
    for (const [protocol, ip, port] of [[UDP, '10.1.0.5', 40000], [TCP, 'fd00::5', 40000], [UDP, '10.1.0.5', 40001], [UDP, '10.9.9.9', 1]] as const) {
      const entry = nat.lookup(protocol, ip, port);
      const found = nat.find(protocol, ip, port);
      expect(found && { ...found }).toEqual(entry && { daddr: entry.daddr, ifindex: entry.ifindex });
      if (entry) expect(entry.dport).toBe(53);
    }
  });
});
