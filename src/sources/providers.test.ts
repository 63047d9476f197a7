import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FlagPodCidrs, FlagResolvers, ResolvConfResolvers, ResolverAddressError, trustedResolversFromFlag } from './index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function resolvConf(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-rc-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'resolv.conf'), text);
  return join(dir, 'resolv.conf');
}

describe('FlagPodCidrs', () => {
  it('splits --pod-cidr, trimming and dropping empty entries', async () => {
    const p = new FlagPodCidrs(' 10.244.0.0/24 , fd00:10::/64,,');
    expect(p.origin).toBe('--pod-cidr');
    expect(await p.podCidrs()).toEqual(['10.244.0.0/24', 'fd00:10::/64']);
  });
  it('no flag is no CIDR (the agent refuses to start)', async () => {
    expect(await new FlagPodCidrs(undefined).podCidrs()).toEqual([]);
  });
  it('hands out copies', async () => {
    const p = new FlagPodCidrs('10.0.0.0/24');
    (await p.podCidrs()).push('x');
    expect(await p.podCidrs()).toEqual(['10.0.0.0/24']);
  });
});

describe('trusted resolvers', () => {
  it('--dns-trusted: its addresses, validated when the flag is read', async () => {
    const p = trustedResolversFromFlag('192.0.2.53, 2001:db8::53', '/nonexistent');
    expect(p).toBeInstanceOf(FlagResolvers);
    expect(p.origin).toBe('--dns-trusted');
    expect(await p.trustedResolvers()).toEqual(['192.0.2.53', '2001:db8::53']);
    expect(() => new FlagResolvers('192.0.2.53,dns.example')).toThrow(ResolverAddressError);
    expect(() => new FlagResolvers('nope')).toThrow('--dns-trusted: "nope" is not an IP address');
  });

  it('without the flag: the nameserver lines of resolv.conf that are addresses', async () => {
    const path = resolvConf('# comment\nsearch example\nnameserver 192.0.2.1\n  nameserver   2001:db8::1\nnameserver not-an-ip\noptions ndots:5\n');
    const p = trustedResolversFromFlag(undefined, path);
    expect(p).toBeInstanceOf(ResolvConfResolvers);
    expect(p.origin).toBe(`--dns-trusted, ${path}`);
    expect(await p.trustedResolvers()).toEqual(['192.0.2.1', '2001:db8::1']);
    expect(trustedResolversFromFlag('', path)).toBeInstanceOf(ResolvConfResolvers);
  });

  it('an unreadable resolv.conf is no resolver (queries are refused, never sent elsewhere)', async () => {
    expect(await new ResolvConfResolvers('/nonexistent/resolv.conf').trustedResolvers()).toEqual([]);
  });

  it('reads resolv.conf when asked, not when built', async () => {
    const path = resolvConf('nameserver 192.0.2.1\n');
    const p = new ResolvConfResolvers(path);
    writeFileSync(path, 'nameserver 192.0.2.2\n');
    expect(await p.trustedResolvers()).toEqual(['192.0.2.2']);
  });
});
