import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatIp, parseCidr, parseIp } from '../net/index.js';
import { Ipam } from './ipam.js';

const dirs: string[] = [];
function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sluice-ipam-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('cidr', () => {
  it('normalizes and round-trips', () => {
    expect(parseCidr('10.244.1.77/24').text).toBe('10.244.1.0/24');
    expect(parseCidr('fd00:10:244:1::5/64').text).toBe('fd00:10:244:1::/64');
    expect(formatIp(6, parseIp('2001:db8::1:0:0:1').value)).toBe('2001:db8::1:0:0:1');
    expect(formatIp(4, parseIp('255.0.0.1').value)).toBe('255.0.0.1');
  });
  it.each(['10.0.0.0', '10.0.0.0/33', '10.0.0.0/x', 'fd00::/129', 'nope/8'])('rejects %s', (t) => {
    expect(() => parseCidr(t)).toThrow(/CIDR|prefix|IP/);
  });
});

describe('Ipam', () => {
  it('hands out one address per family, skipping network and broadcast', () => {
    const ipam = new Ipam(stateDir(), ['10.9.0.0/30', 'fd00:9::/126']);
    const a = ipam.allocate({ containerId: 'c1', ifname: 'eth0' });
    expect(a.map((x) => x.ip)).toEqual(['10.9.0.1', 'fd00:9::1']);
    const b = ipam.allocate({ containerId: 'c2', ifname: 'eth0' });
    expect(b.map((x) => x.ip)).toEqual(['10.9.0.2', 'fd00:9::2']);
    // 10.9.0.3 is the broadcast address: the v4 pool is exhausted, and the
    // v6 address must not leak (all or nothing).
    expect(() => ipam.allocate({ containerId: 'c3', ifname: 'eth0' })).toThrow(expect.objectContaining({ code: 'SLUICE_IPAM_EXHAUSTED' }));
    expect(ipam.list()).toHaveLength(4);
  });

  it('gives a retried owner the same addresses', () => {
    const ipam = new Ipam(stateDir(), ['10.9.0.0/24']);
    const first = ipam.allocate({ containerId: 'c1', ifname: 'eth0' });
    expect(ipam.allocate({ containerId: 'c1', ifname: 'eth0' })).toEqual(first);
    expect(ipam.allocate({ containerId: 'c1', ifname: 'net1' })[0]!.ip).not.toBe(first[0]!.ip);
  });

  it('persists, survives a restart, and never duplicates', () => {
    const dir = stateDir();
    const ipam = new Ipam(dir, ['10.9.0.0/24']);
    const ips = new Set<string>();
    for (let i = 0; i < 50; i++) ips.add(ipam.allocate({ containerId: `c${i}`, ifname: 'eth0' })[0]!.ip);
    expect(ips.size).toBe(50);
    const again = new Ipam(dir, ['10.9.0.0/24']);
    expect(again.list()).toHaveLength(50);
    const next = again.allocate({ containerId: 'new', ifname: 'eth0' })[0]!.ip;
    expect(ips.has(next)).toBe(false);
    expect(readFileSync(join(dir, 'ipam', next), 'utf8')).toBe('new\neth0\n');
  });

  it('does not hand out an address another process linked meanwhile', () => {
    const dir = stateDir();
    const ipam = new Ipam(dir, ['10.9.0.0/29']);
    // Another writer takes .1 behind this instance's back.
    writeFileSync(join(dir, 'ipam', '10.9.0.1'), 'other\neth0\n');
    expect(ipam.allocate({ containerId: 'c1', ifname: 'eth0' })[0]!.ip).toBe('10.9.0.2');
  });

  it('releases idempotently and round-robins before reusing', () => {
    const dir = stateDir();
    const ipam = new Ipam(dir, ['10.9.0.0/29']);
    const a = ipam.allocate({ containerId: 'c1', ifname: 'eth0' })[0]!.ip;
    expect(ipam.release({ containerId: 'c1', ifname: 'eth0' })).toBe(1);
    expect(ipam.release({ containerId: 'c1', ifname: 'eth0' })).toBe(0);
    expect(ipam.allocate({ containerId: 'c2', ifname: 'eth0' })[0]!.ip).not.toBe(a);
    expect(readdirSync(join(dir, 'ipam'))).toHaveLength(1);
  });

  it('drops a crash leftover (temp or empty file) on load', () => {
    const dir = stateDir();
    new Ipam(dir, ['10.9.0.0/29']);
    writeFileSync(join(dir, 'ipam', '.tmp-1-2'), 'x\neth0\n');
    writeFileSync(join(dir, 'ipam', '10.9.0.3'), '');
    const ipam = new Ipam(dir, ['10.9.0.0/29']);
    expect(ipam.list()).toHaveLength(0);
    expect(readdirSync(join(dir, 'ipam'))).toHaveLength(0);
  });
});
