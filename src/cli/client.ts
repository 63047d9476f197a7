// The CLI side of SLUICE-API/1: one JSON request line, one JSON answer line.
import { connect } from 'node:net';
import { join } from 'node:path';

export class AgentUnreachableError extends Error {
  override readonly name = 'AgentUnreachableError';
  readonly code = 'SLUICE_AGENT_UNREACHABLE';
}

export class AgentApiError extends Error {
  override readonly name = 'AgentApiError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

const API_MAGIC = 'SLUICE-API/1\n';
const API_TIMEOUT_MS = 10_000;

export function callAgent(runDir: string, method: string, params?: Record<string, unknown>): Promise<unknown> {
  const path = join(runDir, 'agent.sock');
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    let buf = '';
    sock.setTimeout(API_TIMEOUT_MS, () => sock.destroy(new AgentUnreachableError(`no answer from the agent at ${path} within ${API_TIMEOUT_MS} ms`)));
    sock.on('connect', () => sock.write(`${API_MAGIC}${JSON.stringify({ method, params })}\n`));
    sock.on('data', (d: Buffer) => (buf += d.toString()));
    sock.on('error', (err: NodeJS.ErrnoException) =>
      reject(err instanceof AgentUnreachableError ? err : new AgentUnreachableError(`cannot reach the agent at ${path}: ${err.code ?? err.message} (is \`sluice agent\` running? --run-dir?)`)),
    );
    sock.on('end', () => {
      try {
        const reply = JSON.parse(buf) as { ok: boolean; result?: unknown; error?: { code: string; message: string } };
        if (reply.ok) resolve(reply.result);
        else reject(new AgentApiError(reply.error?.code ?? 'SLUICE_API', reply.error?.message ?? 'request failed'));
      } catch {
        reject(new AgentApiError('SLUICE_API', `malformed answer from the agent: ${buf.slice(0, 200)}`));
      }
    });
  });
}
