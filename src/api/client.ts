// The CLI's side of the API: one connection per request.
import { connect } from 'node:net';
import { join } from 'node:path';
import { AgentUnreachableError } from './errors.js';
import type { Method, Params, Reply } from './methods.js';
import { encodeRequest, parseAnswer } from './protocol.js';

/** No answer within this: the agent is stuck or gone. */
const API_TIMEOUT_MS = 10_000;

/** The agent's socket in its runtime directory (--run-dir). */
export function socketPath(runDir: string): string {
  return join(runDir, 'agent.sock');
}

/**
 * One request, unchecked: any method name, any params; resolves with the
 * answer's result as JSON left it. `call` is the typed way in.
 */
export function request(runDir: string, method: string, params?: unknown): Promise<unknown> {
  const path = socketPath(runDir);
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    let buf = '';
    sock.setTimeout(API_TIMEOUT_MS, () => sock.destroy(new AgentUnreachableError(`no answer from the agent at ${path} within ${API_TIMEOUT_MS} ms`)));
    sock.on('connect', () => sock.write(encodeRequest(method, params)));
    sock.on('data', (d: Buffer) => (buf += d.toString()));
    sock.on('error', (err: NodeJS.ErrnoException) =>
      reject(err instanceof AgentUnreachableError ? err : new AgentUnreachableError(`cannot reach the agent at ${path}: ${err.code ?? err.message} (is \`sluice agent\` running? --run-dir?)`)),
    );
    sock.on('end', () => {
      try {
        resolve(parseAnswer(buf));
      } catch (err) {
        reject(err);
      }
    });
  });
}

/** Params may be left out when the method has no required one. */
type ParamsArg<M extends Method> = Record<string, never> extends Params<M> ? [params?: Params<M>] : [params: Params<M>];

/** A typed request: the params the method takes, the reply it gives (methods.ts). */
export function call<M extends Method>(runDir: string, method: M, ...[params]: ParamsArg<M>): Promise<Reply<M>> {
  return request(runDir, method, params) as Promise<Reply<M>>;
}
