// Handing a running agent's listening sockets to its successor, so that DNS
// never goes unanswered across an upgrade (issue 17; docs/kubernetes.md ›
// Upgrades). A new agent started while another serves the same run
// directory asks it, on <run-dir>/handover.sock, for its sockets. The old
// agent stops reading them (what arrives from then on waits in their kernel
// queues), answers the queries already forwarded, stops everything else
// (the journal of learned names closed, so the successor restores all of
// it), and sends the sockets themselves (SCM_RIGHTS). The successor serves
// them once it has started: a query sent during the handover is answered
// late, never lost. The old agent then stays dormant, holding nothing, until
// it is stopped (a DaemonSet's old pod is deleted once the new one is ready;
// exiting would make kubelet restart it, and the restarted agent would take
// the sockets back).
//
// The sockets handed over: the DNS proxy's UDP and TCP listeners and the
// health/metrics listener (kubelet's probes of either pod find an answer).
import { existsSync, unlinkSync, chmodSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../log/index.js';
import { native } from '../native/index.js';

export const HANDOVER_SOCKET = 'handover.sock';
const REQUEST = 'sluice-handover/1';
/** How long a successor waits for the old agent to drain and stop. */
export const HANDOVER_TIMEOUT_MS = 30_000;

/** A listening socket, as the two agents name it. */
export interface ListenerDesc {
  role: 'dns' | 'health';
  type: 'udp' | 'tcp';
  address: string;
  port: number;
}

export interface HeldListener extends ListenerDesc {
  fd: number;
}

export class HandoverError extends Error {
  override readonly name = 'HandoverError';
}

const same = (a: ListenerDesc, b: ListenerDesc): boolean => a.role === b.role && a.type === b.type && a.address === b.address && a.port === b.port;

/** The fd under a net.Server or net.Socket (Node keeps it on its handle). */
export function handleFd(handle: Server | Socket): number | undefined {
  const fd = (handle as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** A listener as the other agent is told of it (its fd travels beside the message). */
const describe = ({ fd: _fd, ...d }: HeldListener): ListenerDesc => d;

const REQUEST_LINE = new RegExp(`^${REQUEST} (?:probe|pid=(\\d+))$`);

/** What a successor received: each listener taken at most once, the rest closed. */
export class Inherited {
  readonly #left: HeldListener[];
  constructor(
    /** The old agent's pid. */
    readonly from: number,
    listeners: HeldListener[],
  ) {
    this.#left = [...listeners];
  }

  get descs(): ListenerDesc[] {
    return this.#left.map(describe);
  }

  /** The fd of the listener `want` describes (now the caller's), if it was handed over. */
  take(want: ListenerDesc): number | undefined {
    const i = this.#left.findIndex((l) => same(l, want));
    if (i < 0) return undefined;
    return this.#left.splice(i, 1)[0]!.fd;
  }

  /** Closes what nobody took (a listener this agent's flags no longer ask for). */
  closeRest(): ListenerDesc[] {
    const rest = this.#left.splice(0);
    for (const l of rest) native().fdClose(l.fd);
    return rest;
  }
}

/**
 * The pid of an agent serving `runDir` that can hand over (it keeps serving;
 * nothing changes), or undefined when there is none. The successor prepares
 * what does not touch the old agent's work (loading the eBPF programs,
 * listing its sources) before it asks: DNS waits only for the rest.
 */
export function probeHandover(runDir: string, timeoutMs = 5000): number | undefined {
  const path = join(runDir, HANDOVER_SOCKET);
  if (!existsSync(path)) return undefined;
  let answer: { payload: string; fds: number[] } | null;
  try {
    answer = native().handoverRequest(path, `${REQUEST} probe\n`, timeoutMs);
  } catch {
    return undefined; // not answering: whatever it is, it is not an agent that can hand over
  }
  if (!answer) return undefined;
  for (const fd of answer.fds) native().fdClose(fd);
  try {
    const msg = JSON.parse(answer.payload) as { pid?: unknown };
    return typeof msg.pid === 'number' ? msg.pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Asks the agent serving `runDir` for its listeners (blocking, at most
 * `timeoutMs`): undefined when no agent serves it. Throws HandoverError when
 * one is there but cannot hand over.
 */
export function requestHandover(runDir: string, timeoutMs = HANDOVER_TIMEOUT_MS): Inherited | undefined {
  const path = join(runDir, HANDOVER_SOCKET);
  if (!existsSync(path)) return undefined;
  let answer: { payload: string; fds: number[] } | null;
  try {
    answer = native().handoverRequest(path, `${REQUEST} pid=${process.pid}\n`, timeoutMs);
  } catch (err) {
    throw new HandoverError(`the agent serving ${path} did not hand its sockets over: ${(err as Error).message}`);
  }
  if (!answer) return undefined;
  const { payload, fds } = answer;
  const fail = (why: string): never => {
    for (const fd of fds) native().fdClose(fd);
    throw new HandoverError(`the agent serving ${path} did not hand its sockets over: ${why}`);
  };
  let msg: { pid?: unknown; listeners?: unknown; error?: unknown };
  try {
    msg = JSON.parse(payload) as typeof msg;
  } catch {
    return fail('its answer is not JSON');
  }
  if (typeof msg.error === 'string') return fail(msg.error);
  const listeners = msg.listeners;
  if (typeof msg.pid !== 'number' || !Array.isArray(listeners) || listeners.length !== fds.length) return fail(`it sent ${fds.length} sockets and an answer that does not describe them`);
  const held: HeldListener[] = [];
  for (const [i, l] of (listeners as ListenerDesc[]).entries()) {
    if (!l || (l.role !== 'dns' && l.role !== 'health') || (l.type !== 'udp' && l.type !== 'tcp') || typeof l.address !== 'string' || !Number.isInteger(l.port)) return fail(`listener ${i} is not described`);
    held.push({ role: l.role, type: l.type, address: l.address, port: l.port, fd: fds[i]! });
  }
  return new Inherited(msg.pid, held);
}

export interface HandoverHooks {
  /**
   * Stops the agent for the successor `pid` and returns its listeners'
   * fds, duplicated before the agent closed its own (the caller closes them
   * once sent). Throws if the agent cannot hand over (then it keeps serving).
   */
  give(pid: number): Promise<HeldListener[]>;
  /** After the sockets went (ok) or could not go although the agent had stopped (not ok). */
  done(ok: boolean, pid: number): void;
}

/** Serves handover requests on `runDir`/handover.sock; one handover at most. */
export async function serveHandover(runDir: string, hooks: HandoverHooks, log: Logger): Promise<Server> {
  const path = join(runDir, HANDOVER_SOCKET);
  try {
    unlinkSync(path); // a dead agent's; a live one was asked (requestHandover) before we got here
  } catch {
    // none
  }
  let busy = false;
  const server = createServer((sock) => {
    sock.setTimeout(5000, () => sock.destroy());
    let line = '';
    sock.on('error', () => sock.destroy());
    sock.on('data', (d: Buffer) => {
      line += d.toString('latin1');
      if (line.length > 256) return void sock.destroy();
      const nl = line.indexOf('\n');
      if (nl < 0) return;
      sock.removeAllListeners('data');
      sock.setTimeout(0);
      const m = REQUEST_LINE.exec(line.slice(0, nl));
      if (!m) return void answerOrDrop(sock, { error: 'not a handover request' });
      if (m[1] === undefined) return void answerOrDrop(sock, { pid: process.pid, busy });
      if (busy) return void answerOrDrop(sock, { error: 'a handover is already under way' });
      busy = true;
      void handOver(sock, Number(m[1]));
    });
  });
  const answer = (sock: Socket, msg: object, fds: number[]): void => {
    const fd = handleFd(sock);
    if (fd === undefined) throw new Error('the handover connection has no fd');
    native().handoverSend(fd, `${JSON.stringify(msg)}\n`, fds);
    sock.end();
  };
  /** An answer without sockets; a peer gone already (EPIPE) is nothing to crash the agent for. */
  const answerOrDrop = (sock: Socket, msg: object): void => {
    try {
      answer(sock, msg, []);
    } catch (err) {
      log.debug({ err }, 'a handover client left before its answer');
      sock.destroy();
    }
  };
  const handOver = async (sock: Socket, pid: number): Promise<void> => {
    log.info({ successor: pid }, 'a successor agent asks for the sockets: handing over');
    let held: HeldListener[];
    try {
      held = await hooks.give(pid);
    } catch (err) {
      busy = false;
      log.error({ err, successor: pid }, 'cannot hand over; serving on');
      answerOrDrop(sock, { error: `the agent cannot hand over: ${(err as Error).message}` });
      return;
    }
    let ok = true;
    try {
      answer(sock, { pid: process.pid, listeners: held.map(describe) }, held.map((h) => h.fd));
    } catch (err) {
      ok = false;
      log.error({ err, successor: pid }, 'the sockets could not be sent to the successor');
      sock.destroy();
    }
    for (const h of held) native().fdClose(h.fd);
    hooks.done(ok, pid);
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o600);
  return server;
}
