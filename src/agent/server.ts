// The agent's unix socket. Two protocols, told apart by their first bytes:
//   SLUICE-CNI/1  a CNI request from the sluice-cni binary (src/cni/wire.ts)
//   SLUICE-API/1  one JSON request line from the `sluice` CLI, one JSON answer
//                 (src/api: the methods, their params and replies)
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { API_MAGIC, dispatch, encodeAnswer, errorAnswer, parseRequest, type Handlers } from '../api/index.js';
import type { Logger } from '../log/index.js';

const CNI_MAGIC = 'SLUICE-CNI/1\0';
/** A request larger than this is not a CNI config: refuse it. */
const MAX_REQUEST_BYTES = 4 << 20;

export interface ServerHandlers {
  cni(request: Buffer): Promise<Buffer>;
  /** One handler per API method; dispatch() checks each request's params first. */
  api: Handlers;
}

async function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export async function listen(path: string, handlers: ServerHandlers, log: Logger): Promise<Server> {
  if (existsSync(path)) {
    if (await socketInUse(path)) throw new Error(`another agent is serving ${path}`);
    unlinkSync(path); // stale socket of a dead agent
  }
  // allowHalfOpen: sluice-cni shuts down its write side to mark the end of the
  // request, then reads the answer.
  const server = createServer({ allowHalfOpen: true }, (sock) => serve(sock, handlers, log));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

function serve(sock: Socket, handlers: ServerHandlers, log: Logger): void {
  const chunks: Buffer[] = [];
  let size = 0;
  sock.on('data', (d: Buffer) => {
    size += d.length;
    if (size > MAX_REQUEST_BYTES) {
      log.warn({ size }, 'oversized request dropped');
      sock.destroy();
      return;
    }
    chunks.push(d);
    // API requests are one line and do not half-close: answer at the newline.
    const head = chunks[0]!;
    if (head.subarray(0, API_MAGIC.length).toString('latin1') === API_MAGIC && d.includes(0x0a, chunks.length === 1 ? API_MAGIC.length : 0)) {
      const all = Buffer.concat(chunks).toString('utf8');
      const line = all.slice(API_MAGIC.length, all.indexOf('\n', API_MAGIC.length));
      chunks.length = 0;
      void answerApi(sock, line, handlers, log);
    }
  });
  sock.on('end', () => {
    // Closed with nothing asked (a liveness check): close our half too, or
    // the connection stays half-open and holds the server's close() up.
    if (chunks.length === 0) {
      sock.end();
      return;
    }
    const req = Buffer.concat(chunks);
    if (req.subarray(0, CNI_MAGIC.length).toString('latin1') !== CNI_MAGIC) {
      sock.end();
      return;
    }
    handlers.cni(req).then(
      (resp) => sock.end(resp),
      (err: unknown) => {
        log.error({ err }, 'CNI request failed unexpectedly');
        sock.destroy();
      },
    );
  });
  sock.on('error', (err) => log.debug({ err }, 'client socket error'));
}

async function answerApi(sock: Socket, line: string, handlers: ServerHandlers, log: Logger): Promise<void> {
  let answer: string;
  try {
    answer = encodeAnswer({ ok: true, result: await dispatch(handlers.api, parseRequest(line)) });
  } catch (err) {
    log.debug({ err }, 'API request failed');
    answer = encodeAnswer(errorAnswer(err));
  }
  sock.end(answer);
}
