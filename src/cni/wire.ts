// SLUICE-CNI/1: the request the native sluice-cni binary sends to the agent,
// and the answer. Kept in step with native/cni/sluice-cni.c (docs/cni.md).
//   request:  "SLUICE-CNI/1\0" ("KEY=VALUE\0")* "\0" stdin
//   response: "<exit status>\n" stdout

export const WIRE_MAGIC = 'SLUICE-CNI/1';
/** The variables the binary forwards; nothing else is read from a request. */
export const FORWARDED_ENV = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'] as const;

export class WireError extends Error {
  override readonly name = 'WireError';
  readonly code = 'SLUICE_WIRE';
}

export interface WireRequest {
  env: Record<string, string>;
  stdin: string;
}

export function decodeRequest(buf: Buffer): WireRequest {
  let pos = buf.indexOf(0);
  if (pos < 0 || buf.toString('latin1', 0, pos) !== WIRE_MAGIC) throw new WireError(`not a ${WIRE_MAGIC} request`);
  pos += 1;
  const env: Record<string, string> = {};
  for (;;) {
    const end = buf.indexOf(0, pos);
    if (end < 0) throw new WireError('truncated request (environment not terminated)');
    if (end === pos) {
      pos += 1;
      break;
    }
    const pair = buf.toString('utf8', pos, end);
    const eq = pair.indexOf('=');
    const key = eq > 0 ? pair.slice(0, eq) : '';
    if ((FORWARDED_ENV as readonly string[]).includes(key)) env[key] = pair.slice(eq + 1);
    pos = end + 1;
  }
  return { env, stdin: buf.toString('utf8', pos) };
}

export function encodeRequest(req: WireRequest): Buffer {
  const parts: Buffer[] = [Buffer.from(`${WIRE_MAGIC}\0`)];
  for (const key of FORWARDED_ENV) if (req.env[key] !== undefined) parts.push(Buffer.from(`${key}=${req.env[key]}\0`));
  parts.push(Buffer.from('\0'), Buffer.from(req.stdin));
  return Buffer.concat(parts);
}

export function encodeResponse(status: number, stdout: string): Buffer {
  return Buffer.from(`${status}\n${stdout}`);
}
