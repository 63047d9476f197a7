// The handover protocol on real unix sockets and real UDP sockets: a
// datagram queued in a socket before it is handed over is read by the
// receiver from the fd it got, which is the same socket.
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { native } from '../native/index.js';
import { HANDOVER_SOCKET, HandoverError, requestHandover, serveHandover, type HeldListener } from './handover.js';

const log = pino({ level: 'silent' });
let dir: string;
let servers: Server[];
let fds: number[];
/** handover.ts bundled, for the successor's side in a child process (it blocks while the old side works). */
let bundleDir: string;
let bundle: string;

beforeAll(() => {
  bundleDir = mkdtempSync(join(tmpdir(), 'slt-handover-bundle-'));
  bundle = join(bundleDir, 'handover.mjs');
  buildSync({ entryPoints: [new URL('./handover.ts', import.meta.url).pathname], bundle: true, platform: 'node', format: 'esm', outfile: bundle, logLevel: 'warning' });
});
afterAll(() => rmSync(bundleDir, { recursive: true, force: true }));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'slt-handover-'));
  servers = [];
  fds = [];
});
afterEach(async () => {
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
  for (const fd of fds) {
    try {
      native().fdClose(fd);
    } catch {
      // handed over and closed by its receiver
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** A bound UDP socket on loopback and its port. */
async function udpSocket(): Promise<{ fd: number; port: number }> {
  const fd = native().socketBind(4, 'udp', '127.0.0.1', 0);
  fds.push(fd);
  // The kernel-chosen port, through a dgram socket on a copy of the fd (closed right after).
  const s = dgram.createSocket('udp4');
  const port = await new Promise<number>((resolve) => s.bind({ fd: native().fdDup(fd) }, () => resolve(s.address().port)));
  s.close();
  return { fd, port };
}

describe('handover', () => {
  it('finds nobody to ask when no socket file or a dead agent is there', () => {
    expect(requestHandover(dir, 2000)).toBeUndefined();
    writeFileSync(join(dir, HANDOVER_SOCKET), ''); // not a socket: connect is refused
    expect(requestHandover(dir, 2000)).toBeUndefined();
  });

  it('hands over a socket with what is queued in it, and says who it came from', async () => {
    const { fd, port } = await udpSocket();
    const gave: number[] = [];
    const done: Array<[boolean, number]> = [];
    servers.push(
      await serveHandover(
        dir,
        {
          give: async (pid) => {
            gave.push(pid);
            // Queued before the sockets go: the successor must read it.
            const c = dgram.createSocket('udp4');
            await new Promise<void>((r) => c.send('queued while handing over', port, '127.0.0.1', () => r()));
            c.close();
            const dup = native().fdDup(fd);
            native().fdClose(fd);
            fds.splice(fds.indexOf(fd), 1);
            return [{ role: 'dns', type: 'udp', address: '10.0.0.1', port: 53, fd: dup } satisfies HeldListener];
          },
          done: (ok, pid) => done.push([ok, pid]),
        },
        log,
      ),
    );
    // The request blocks this thread: run it in a child so the server above can answer.
    const inherited = await inChild(dir);
    expect(inherited.error).toBeUndefined();
    expect(inherited.from).toBe(process.pid);
    expect(inherited.descs).toEqual([{ role: 'dns', type: 'udp', address: '10.0.0.1', port: 53 }]);
    expect(inherited.read).toBe('queued while handing over');
    expect(gave).toHaveLength(1);
    expect(done).toEqual([[true, gave[0]]]);
  });

  it('answers a probe with its pid and keeps serving (give is not called)', async () => {
    let gave = 0;
    servers.push(await serveHandover(dir, { give: async () => (gave++, []), done: () => {} }, log));
    expect((await inChild(dir, 5000, 'probe')).probed).toBe(process.pid);
    expect(gave).toBe(0);
    expect((await inChild(dir)).descs).toEqual([]);
    expect(gave).toBe(1);
  });

  it('survives clients that leave before their answer, and hands over afterwards', async () => {
    servers.push(await serveHandover(dir, { give: async () => [], done: () => {} }, log));
    const { connect } = await import('node:net');
    for (const line of ['sluice-handover/1 probe\n', 'not a request\n']) {
      for (let i = 0; i < 20; i++) {
        const c = connect(join(dir, HANDOVER_SOCKET));
        await new Promise<void>((r) => c.once('connect', () => r()));
        c.end(line);
        c.destroy();
      }
    }
    await new Promise((r) => setTimeout(r, 100));
    expect((await inChild(dir)).descs).toEqual([]);
  });

  it('reports an agent that cannot hand over, which serves on and can be asked again', async () => {
    let refuse = true;
    servers.push(
      await serveHandover(
        dir,
        {
          give: async () => {
            if (refuse) throw new Error('still starting');
            return [];
          },
          done: () => {},
        },
        log,
      ),
    );
    expect((await inChild(dir)).error).toMatch(/did not hand its sockets over: the agent cannot hand over: still starting/);
    refuse = false;
    const again = await inChild(dir);
    expect(again.error).toBeUndefined();
    expect(again.descs).toEqual([]);
  });

  it('is a HandoverError when the agent there never answers in time', async () => {
    servers.push(await serveHandover(dir, { give: () => new Promise(() => {}), done: () => {} }, log));
    const r = await inChild(dir, 300);
    expect(r.error).toMatch(/did not hand its sockets over: .*ETIMEDOUT/);
    expect(r.errorName).toBe(HandoverError.name);
  });
});

interface ChildResult {
  error?: string;
  errorName?: string;
  from?: number;
  descs?: unknown[];
  read?: string;
  probed?: number | null;
}

/**
 * requestHandover in a separate process (it blocks while the old agent
 * drains): the child reads one datagram from the first fd it got, if any.
 */
async function inChild(runDir: string, timeoutMs = 5000, mode: 'request' | 'probe' = 'request'): Promise<ChildResult> {
  const { spawn } = await import('node:child_process');
  const script = `
    const { probeHandover, requestHandover } = await import(${JSON.stringify(bundle)});
    const dgram = (await import('node:dgram')).default;
    let out;
    if (${JSON.stringify(mode)} === 'probe') {
      process.stdout.write(JSON.stringify({ probed: probeHandover(${JSON.stringify(runDir)}, ${timeoutMs}) ?? null }));
      process.exit(0);
    }
    try {
      const inh = requestHandover(${JSON.stringify(runDir)}, ${timeoutMs});
      out = { from: inh.from, descs: inh.descs };
      const fd = inh.take({ role: 'dns', type: 'udp', address: '10.0.0.1', port: 53 });
      if (fd !== undefined) {
        const s = dgram.createSocket('udp4');
        out.read = await new Promise((resolve) => { s.on('message', (m) => { s.close(); resolve(m.toString()); }); s.bind({ fd }); });
      }
    } catch (err) {
      out = { error: err.message, errorName: err.name };
    }
    process.stdout.write(JSON.stringify(out));
  `;
  const addon = new URL('../../build/Release/sluice_native.node', import.meta.url).pathname;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SLUICE_NATIVE_ADDON: addon } });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => child.once('exit', r));
  return JSON.parse(out) as ChildResult;
}
