// The DNS proxy's batched UDP socket (native/udpbatch.cc) against the real
// kernel on loopback: a burst arrives in few calls with each datagram's own
// bytes, source address and port; a send() during a batch callback is queued
// and goes out with the others (sendmmsg) once it returns, any other is one
// sendto; IPv6 too; a closed socket reads and sends nothing more and closes
// its fd.
import dgram from 'node:dgram';
import { readFileSync, readlinkSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { native, type UdpBatchSocket } from '../../src/native/index.js';

const open: Array<UdpBatchSocket | dgram.Socket> = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

/** A batched socket on a kernel-chosen loopback port, and its port. */
function batched(family: 4 | 6, onBatch: (bufs: Buffer[], hosts: string[], ports: number[]) => void, onSendFailed?: (count: number) => void): { sock: UdpBatchSocket; port: number; fd: number } {
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

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
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
    await until(() => answers.length === 200);
    expect(got.map((g) => g.text).sort()).toEqual(Array.from({ length: 200 }, (_, i) => `q${i}`).sort());
    expect(new Set(got.map((g) => `${g.host}|${g.port}`))).toEqual(new Set([`${host}|${c.address().port}`]));
    expect(answers.sort()).toEqual(Array.from({ length: 200 }, (_, i) => `re:q${i}`).sort());
    expect(calls).toBeLessThan(50); // batches, not a call per datagram
    expect(sock.truncated).toBe(0);
  });

  it('close() stops reading, makes send() false and closes the fd', async () => {
    let seen = 0;
    const { sock, port, fd } = batched(4, (bufs) => (seen += bufs.length));
    const inode = inodeOf(fd);
    expect(inode).toBeDefined();
    const c = await client(4);
    c.send('one', port, '127.0.0.1');
    await until(() => seen === 1);
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
    await until(() => answers.length === 20);
    expect(answers).toEqual(Array.from({ length: 20 }, (_, i) => `re:q${i}`)); // one sender, one receiver: in order
    // Sent as queued (send() said true): refused only at the flush, and counted there.
    expect(failed.reduce((a, b) => a + b, 0)).toBe(20);
  });
});
