// The DNS test helpers against each other, in one namespace: nsd serving two
// zones, unbound and dnsmasq forwarding to it, a rogue dnsmasq, dig and
// dnsprobe.py as clients. Addresses are 198.18.0.0/15 and fd00::/8, on lo of
// our own netns only.
import { spawn } from 'node:child_process';
import * as dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dig,
  probeLookupConnect,
  probeQuery,
  probeSendRaw,
  startAuthServer,
  startDnsmasq,
  startForwarder,
  type AuthServer,
  type DnsServer,
  type Zone,
} from './dns.js';
import { Cleanup, isRoot, type Netns } from './netns.js';

const NSD = '198.18.0.1';
const UNBOUND = '198.18.0.2';
const ROGUE = '198.18.0.3';
const DNSMASQ = '198.18.0.4';
const CACHING = '198.18.0.5';
const NSD6 = 'fd00:53::1';
const ROGUE_ANSWER = '198.18.66.6';
/** Has a TCP listener on 8080. */
const WEB = '198.18.10.1';
/** Not assigned, no route: connecting fails at once. */
const UNROUTED = '198.18.10.2';
const TXT = `hello "world" \\ ${'x'.repeat(300)}`;

const EXAMPLE: Zone = {
  origin: 'example.test',
  records: [
    { name: 'www', type: 'A', value: '198.18.1.1', ttl: 5 },
    { name: 'www', type: 'AAAA', value: 'fd00:1::1', ttl: 5 },
    { name: 'static', type: 'A', value: '198.18.1.2' },
    { name: 'web', type: 'A', value: WEB },
    { name: 'unrouted', type: 'A', value: UNROUTED },
    { name: 'alias', type: 'CNAME', value: 'hop.other.test.' },
    { name: 'txt', type: 'TXT', value: TXT },
    ...Array.from({ length: 300 }, (_, i) => ({ name: 'many', type: 'A' as const, value: `198.18.${2 + (i >> 8)}.${i & 255}` })),
  ],
};
const OTHER: Zone = {
  origin: 'other.test',
  defaultTtl: 5,
  records: [
    { name: 'hop', type: 'CNAME', value: 'web' }, // relative: web.other.test
    { name: 'web.other.test.', type: 'A', value: WEB },
  ],
};

describe.skipIf(!isRoot)('DNS test helpers', () => {
  const cleanup = new Cleanup();
  let ns: Netns;
  let nsd: AuthServer;
  let unbound: DnsServer;
  let caching: DnsServer;
  let dnsmasq: DnsServer;

  beforeAll(async () => {
    ns = cleanup.netns('dns');
    for (const a of [NSD, UNBOUND, ROGUE, DNSMASQ, CACHING, WEB]) ns.exec('ip', ['addr', 'add', `${a}/32`, 'dev', 'lo']);
    ns.exec('ip', ['addr', 'add', `${NSD6}/128`, 'dev', 'lo', 'nodad']);
    nsd = await startAuthServer(cleanup, ns, { address: NSD, zones: [EXAMPLE, OTHER] });
    unbound = await startForwarder(cleanup, ns, { address: UNBOUND, upstream: NSD, zones: ['example.test', 'other.test'] });
    caching = await startForwarder(cleanup, ns, { address: CACHING, upstream: NSD, zones: ['example.test'], cache: true });
    dnsmasq = await startDnsmasq(cleanup, ns, { mode: 'forwarder', address: DNSMASQ, upstream: NSD });
    await startDnsmasq(cleanup, ns, { mode: 'rogue', address: ROGUE, answer: ROGUE_ANSWER });
    await tcpListener(cleanup, ns, WEB, 8080);
  });
  afterAll(() => cleanup.run());

  it('nsd answers A and AAAA with the zone TTLs', () => {
    expect(dig(ns, NSD, 'www.example.test')).toEqual({
      status: 'NOERROR',
      answers: [{ name: 'www.example.test', ttl: 5, type: 'A', value: '198.18.1.1' }],
    });
    expect(dig(ns, NSD, 'WWW.Example.Test', { type: 'AAAA' }).answers).toEqual([
      { name: 'www.example.test', ttl: 5, type: 'AAAA', value: 'fd00:1::1' },
    ]);
    expect(dig(ns, NSD, 'static.example.test').answers[0]?.ttl).toBe(3600);
    expect(dig(ns, NSD, 'nope.example.test').status).toBe('NXDOMAIN');
  });

  it('nsd answers over TCP, and TXT text comes back as written', () => {
    expect(dig(ns, NSD, 'www.example.test', { tcp: true }).answers.map((a) => a.value)).toEqual(['198.18.1.1']);
    expect(dig(ns, NSD, 'txt.example.test', { type: 'TXT' }).answers[0]?.value).toBe(TXT);
  });

  it('a name with 300 A records: truncated over UDP, complete over TCP', async () => {
    expect(dig(ns, NSD, 'many.example.test').answers).toHaveLength(300); // dig retries over TCP itself
    expect((await probeQuery(ns, { server: NSD, name: 'many.example.test' })).tc).toBe(true);
    const tcp = await probeQuery(ns, { server: NSD, name: 'many.example.test', tcp: true });
    expect(tcp.answers).toHaveLength(300);
    expect(new Set(tcp.answers.map((a) => a.value)).size).toBe(300);
    // The forwarders fetch it over TCP themselves.
    expect(dig(ns, UNBOUND, 'many.example.test', { tcp: true }).answers).toHaveLength(300);
    expect(dig(ns, DNSMASQ, 'many.example.test', { tcp: true }).answers).toHaveLength(300);
  });

  it('unbound resolves a CNAME chain across zones, with TTL 0 when its cache is off', () => {
    const r = dig(ns, UNBOUND, 'alias.example.test');
    expect(r.status).toBe('NOERROR');
    expect(r.answers).toEqual([
      { name: 'alias.example.test', ttl: 0, type: 'CNAME', value: 'hop.other.test' },
      { name: 'hop.other.test', ttl: 0, type: 'CNAME', value: 'web.other.test' },
      { name: 'web.other.test', ttl: 0, type: 'A', value: WEB },
    ]);
    expect(dig(ns, UNBOUND, 'nope.other.test').status).toBe('NXDOMAIN');
    expect(dig(ns, UNBOUND, 'example.com').status).toBe('REFUSED'); // not one of its zones
    // A long TTL: still cached when the last test asks again.
    expect(dig(ns, CACHING, 'static.example.test').answers).toEqual([
      { name: 'static.example.test', ttl: 3600, type: 'A', value: '198.18.1.2' },
    ]);
  });

  it('dnsmasq forwards to nsd; the rogue dnsmasq answers its address for any name', () => {
    expect(dig(ns, DNSMASQ, 'www.example.test').answers).toEqual([{ name: 'www.example.test', ttl: 5, type: 'A', value: '198.18.1.1' }]);
    for (const name of ['www.example.test', 'anything.example.com']) {
      expect(dig(ns, ROGUE, name).answers.map((a) => [a.type, a.value])).toEqual([['A', ROGUE_ANSWER]]);
    }
  });

  it('dig reports no reply as a timeout', () => {
    expect(dig(ns, NSD, 'www.example.test', { port: 5999, timeoutS: 1 })).toEqual({ status: 'timeout', answers: [] });
  });

  it('probeQuery: our ID, the AA bit and the answers', async () => {
    const r = await probeQuery(ns, { server: NSD, name: 'www.example.test', id: 4242 });
    expect(r).toMatchObject({ rcode: 'NOERROR', id: 4242, aa: true, tc: false, error: null });
    expect(r.answers).toEqual([{ name: 'www.example.test', type: 'A', ttl: 5, value: '198.18.1.1' }]);
    const txt = await probeQuery(ns, { server: UNBOUND, name: 'txt.example.test', type: 'TXT', tcp: true });
    expect(txt.answers[0]?.value).toBe(TXT);
  });

  it('probeLookupConnect: resolves through unbound, follows the CNAMEs and connects', async () => {
    const r = await probeLookupConnect(ns, {
      server: UNBOUND,
      names: ['web.example.test', 'alias.example.test', 'unrouted.example.test', 'nope.example.test'],
      port: 8080,
    });
    expect(r.results.map((x) => [x.name, x.ip, x.connected, x.error])).toEqual([
      ['web.example.test', WEB, true, null],
      ['alias.example.test', WEB, true, null],
      ['unrouted.example.test', UNROUTED, false, 'enetunreach'],
      ['nope.example.test', null, false, 'rcode-nxdomain'],
    ]);
    expect(r.failures).toBe(2);
  });

  it('probeSendRaw: hand-made bytes get nsd’s reply', async () => {
    const query = dnsPacket.encode({ type: 'query', id: 7, questions: [{ type: 'A', name: 'static.example.test' }] });
    const r = await probeSendRaw(ns, { server: NSD, hex: query.toString('hex'), count: 2, wait: 0.5 });
    expect(r.sent).toBe(2);
    expect(r.replies).toHaveLength(2);
    const reply = dnsPacket.decode(Buffer.from(r.replies[0]!, 'hex'));
    expect(reply.id).toBe(7);
    expect(reply.answers).toMatchObject([{ name: 'static.example.test', type: 'A', data: '198.18.1.2' }]);
  });

  it('rejects a record value that is not valid for its type', async () => {
    const bad: Zone = { origin: 'bad.test', records: [{ name: 'x', type: 'A', value: 'fd00::1' }] };
    await expect(startAuthServer(cleanup, ns, { address: NSD, port: 5300, zones: [bad] })).rejects.toThrow(/bad.test: x A "fd00::1"/);
  });

  it('nsd loads and serves a zone of 60,000 A records (over IPv6, on another port)', async () => {
    const big: Zone = {
      origin: 'big.test',
      records: Array.from({ length: 60_000 }, (_, i) => ({ name: `h${i}`, type: 'A' as const, value: `198.19.${i >> 8}.${i & 255}` })),
    };
    const t0 = performance.now();
    const server = await startAuthServer(cleanup, ns, { address: NSD6, port: 5353, zones: [big] });
    const ms = Math.round(performance.now() - t0);
    console.log(`nsd: 60,000 A records loaded and answering in ${ms} ms`);
    expect(dig(ns, NSD6, 'h59999.big.test', { port: 5353 }).answers).toEqual([
      { name: 'h59999.big.test', ttl: 3600, type: 'A', value: '198.19.234.95' },
    ]);
    expect(ms).toBeLessThan(10_000);
    server.stop();
  }, 60_000);

  it('stop() kills all of nsd; then only the forwarder with a cache still answers', async () => {
    nsd.stop();
    // nsd forks: only a kill of the whole process group frees the sockets.
    await expect.poll(() => ns.exec('ss', ['-Hlnu', 'src', NSD]).trim(), { timeout: 2000 }).toBe('');
    expect(dig(ns, UNBOUND, 'www.example.test', { timeoutS: 1 }).status).not.toBe('NOERROR');
    expect(dig(ns, DNSMASQ, 'www.example.test', { timeoutS: 1 }).status).not.toBe('NOERROR');
    expect(dig(ns, CACHING, 'static.example.test').answers.map((a) => a.value)).toEqual(['198.18.1.2']);
    expect(unbound.log()).toContain('start of service');
    expect(dnsmasq.log()).toContain('started');
  });
});

/** A TCP server on ip:port in `ns` that accepts and closes every connection. */
async function tcpListener(cleanup: Cleanup, ns: Netns, ip: string, port: number): Promise<void> {
  const script = [
    'import socket, sys',
    's = socket.socket()',
    's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    `s.bind((${JSON.stringify(ip)}, ${port}))`,
    's.listen(128)',
    'print("listening", flush=True)',
    'while True: s.accept()[0].close()',
  ].join('\n');
  const child = spawn('nsenter', [`--net=${ns.path}`, 'python3', '-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanup.add(() => child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`listener on ${ip}:${port} exited with ${code}`)));
  });
}
