// The DNS proxy's batched UDP socket (native/udpbatch.cc) against the real
// kernel on loopback: a burst arrives in few calls with each datagram's own
// bytes, source address and port (IPv4 as a number, IPv6 as text, in one
// reused buffer and array); a send() during a batch callback is queued
// and goes out with the others (sendmmsg) once it returns, any other is one
// sendto; IPv6 too; a closed socket reads and sends nothing more and closes
// its fd.
import dgram from 'node:dgram';
import { readFileSync, readlinkSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { native, type UdpBatchData, type UdpBatchSocket } from '../../src/native/index.js';
import { until } from '../helpers/wait.js';

const open: Array<UdpBatchSocket | dgram.Socket> = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

const FROM_V6 = 1 << 16;

/** A batch's datagrams as copies, with their sources as text (what the proxy reads, spelled out). */
function unpack(onBatch: (bufs: Buffer[], hosts: string[], ports: number[]) => void): UdpBatchData {
  return (count, data, meta, hosts6) => {
    const bufs: Buffer[] = [];
    const hosts: string[] = [];
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const [offset, length, port, v4] = [meta[4 * i]!, meta[4 * i + 1]!, meta[4 * i + 2]!, meta[4 * i + 3]!];
      bufs.push(Buffer.from(data.subarray(offset, offset + length)));
      hosts.push(port & FROM_V6 ? hosts6![i]! : [v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255].join('.'));
      ports.push(port & 0xffff);
    }
    onBatch(bufs, hosts, ports);
  };
}

/** A batched socket on a kernel-chosen loopback port, and its port. */
function batched(family: 4 | 6, onBatch: (bufs: Buffer[], hosts: string[], ports: number[]) => void, onSendFailed?: (count: number) => void): { sock: UdpBatchSocket; port: number; fd: number } {
  return batchedRaw(family, unpack(onBatch), onSendFailed);
}

function batchedRaw(family: 4 | 6, onBatch: UdpBatchData, onSendFailed?: (count: number) => void): { sock: UdpBatchSocket; port: number; fd: number } {
  const n = native();
  const fd = n.socketBind(family, 'udp', family === 4 ? '127.0.0.1' : '::1', 0);
  const sock = new n.UdpBatch(fd, onBatch, onSendFailed);
  open.push(sock);
  return { sock, port: portOf(fd, family), fd };
}

/** The socket inode behind `fd`, or undefined when it is not (or no longer) that socket. */
function inodeOf(fd: number): string | undefined {
  try {
    return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
  } catch {
    return undefined;
  }
}

/** The local port of socket `fd`, from /proc/net/udp{,6} by its inode (the addon has no getsockname). */
function portOf(fd: number, family: 4 | 6): number {
  const inode = inodeOf(fd)!;
  const line = readFileSync(family === 4 ? '/proc/net/udp' : '/proc/net/udp6', 'utf8').split('\n').find((l) => l.trim().split(/\s+/)[9] === inode)!;
  return parseInt(line.trim().split(/\s+/)[1]!.split(':')[1]!, 16);
}

function client(family: 4 | 6): Promise<dgram.Socket> {
  const c = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
  open.push(c);
  return new Promise((r) => c.bind(0, family === 4 ? '127.0.0.1' : '::1', () => r(c)));
}

describe('UdpBatch', () => {
  it.each([4, 6] as const)('IPv%s: a burst of 200 datagrams arrives whole, in batches, each with its source; send() answers each', async (family) => {
    const got: Array<{ text: string; host: string; port: number }> = [];
    let calls = 0;
    const { sock, port } = batched(family, (bufs, hosts, ports) => {
      calls++;
      bufs.forEach((b, i) => {
        got.push({ text: b.toString(), host: hosts[i]!, port: ports[i]! });
        expect(sock.send(Buffer.from(`re:${b.toString()}`), hosts[i]!, ports[i]!)).toBe(true);
      });
    });
    const c = await client(family);
    const answers: string[] = [];
    c.on('message', (m) => answers.push(m.toString()));
    const host = family === 4 ? '127.0.0.1' : '::1';
    for (let i = 0; i < 200; i++) c.send(`q${i}`, port, host);
    await until('the 200 answers', () => answers.length === 200, 2000, 10);
    expect(got.map((g) => g.text).sort()).toEqual(Array.from({ length: 200 }, (_, i) => `q${i}`).sort());
    expect(new Set(got.map((g) => `${g.host}|${g.port}`))).toEqual(new Set([`${host}|${c.address().port}`]));
    expect(answers.sort()).toEqual(Array.from({ length: 200 }, (_, i) => `re:q${i}`).sort());
    expect(calls).toBeLessThan(50); // batches, not a call per datagram
    expect(sock.truncated).toBe(0);
  });

  it.each([4, 6] as const)('IPv%s: each batch is one shared buffer and one reused meta array: offsets, lengths, the source as a number (IPv4) or text (IPv6)', async (family) => {
    const seen: Array<{ data: Buffer; meta: Uint32Array; rows: number[][]; hosts6: string[] | undefined; texts: string[] }> = [];
    const { port } = batchedRaw(family, (count, data, meta, hosts6) => {
      const rows: number[][] = [];
      const texts: string[] = [];
      for (let i = 0; i < count; i++) {
        rows.push([...meta.subarray(4 * i, 4 * i + 4)]);
        texts.push(data.toString('latin1', meta[4 * i]!, meta[4 * i]! + meta[4 * i + 1]!));
      }
      seen.push({ data, meta, rows, hosts6: hosts6 && [...hosts6], texts });
    });
    const c = await client(family);
    const sizes = [1, 0, 300, 1232, 4000]; // an empty datagram too
    for (let round = 0; round < 2; round++) {
      const at = seen.length;
      for (const [i, size] of sizes.entries()) c.send(Buffer.alloc(size, 97 + i + round), port, family === 4 ? '127.0.0.1' : '::1');
      await until('this round\'s datagrams', () => seen.slice(at).reduce((n, b) => n + b.rows.length, 0) === sizes.length, 2000, 10);
    }
    const rows = seen.flatMap((b) => b.rows);
    expect(seen.flatMap((b) => b.texts)).toEqual([0, 1].flatMap((round) => sizes.map((size, i) => String.fromCharCode(97 + i + round).repeat(size))));
    expect(rows.map((r) => r[1])).toEqual([...sizes, ...sizes]);
    const clientPort = c.address().port;
    if (family === 4) {
      expect(rows.every((r) => r[2] === clientPort && r[3] === 0x7f000001)).toBe(true);
      expect(seen.every((b) => b.hosts6 === undefined)).toBe(true);
    } else {
      expect(rows.every((r) => r[2] === (clientPort | FROM_V6))).toBe(true);
      expect(seen.flatMap((b) => b.hosts6!.slice(0, b.rows.length))).toEqual(rows.map(() => '::1'));
    }
    // Made once: every batch hands over the same buffer and array.
    expect(new Set(seen.map((b) => b.data)).size).toBe(1);
    expect(new Set(seen.map((b) => b.meta)).size).toBe(1);
    // The buffer is every socket's (one receive area); the array is each socket's own.
    let other: { data: Buffer; meta: Uint32Array } | undefined;
    const second = batchedRaw(family, (_count, data, meta) => (other = { data, meta }));
    c.send('x', second.port, family === 4 ? '127.0.0.1' : '::1');
    await until('the other socket\'s batch', () => other !== undefined, 2000, 10);
    expect(other!.data).toBe(seen[0]!.data);
    expect(other!.meta).not.toBe(seen[0]!.meta);
  });

  it('close() stops reading, makes send() false and closes the fd', async () => {
    let seen = 0;
    const { sock, port, fd } = batched(4, (bufs) => (seen += bufs.length));
    const inode = inodeOf(fd);
    expect(inode).toBeDefined();
    const c = await client(4);
    c.send('one', port, '127.0.0.1');
    await until('the datagram', () => seen === 1, 2000, 10);
    sock.close();
    c.send('two', port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toBe(1);
    expect(sock.send(Buffer.from('x'), '127.0.0.1', port)).toBe(false);
    expect(inodeOf(fd)).not.toBe(inode); // closed (the number may have been reused by another file)
  });

  it('rejects what is not an address', () => {
    const { sock } = batched(4, () => undefined);
    expect(() => sock.send(Buffer.from('x'), 'not-an-ip', 53)).toThrow(/not an IP address/);
  });

  it('sends made during a batch callback leave after it returns, in order, from whichever socket sent them; a refused one is reported', async () => {
    const failed: number[] = [];
    const answers: string[] = [];
    const other = batched(4, () => undefined, (n) => failed.push(n));
    const { port } = batched(4, (bufs, hosts, ports) => {
      bufs.forEach((b, i) => {
        // Queued on the other socket (as the proxy answers a pod from its listener while reading an upstream's socket).
        expect(other.sock.send(Buffer.from(`re:${b.toString()}`), hosts[i]!, ports[i]!)).toBe(true);
        // An IPv6 destination from an IPv4 socket: the kernel refuses it at the flush.
        expect(other.sock.send(Buffer.from('nope'), '::1', ports[i]!)).toBe(true);
      });
    });
    const c = await client(4);
    c.on('message', (m) => answers.push(m.toString()));
    for (let i = 0; i < 20; i++) c.send(`q${i}`, port, '127.0.0.1');
    await until('the 20 answers', () => answers.length === 20, 2000, 10);
    expect(answers).toEqual(Array.from({ length: 20 }, (_, i) => `re:q${i}`)); // one sender, one receiver: in order
    // Sent as queued (send() said true): refused only at the flush, and counted there.
    expect(failed.reduce((a, b) => a + b, 0)).toBe(20);
  });
});
