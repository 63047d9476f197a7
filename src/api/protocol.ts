// SLUICE-API/1 on the agent's socket: the client writes the magic line, then
// one JSON request line {method, params}; the agent answers one JSON line,
// {ok: true, result} or {ok: false, error: {code, message}}, and closes.
import { AgentApiError, ApiCode } from './errors.js';

export const API_MAGIC = 'SLUICE-API/1\n';

export interface ApiRequest {
  method: string;
  /** Unchecked: dispatch() checks it against the method. */
  params?: unknown;
}

export type ApiAnswer = { ok: true; result?: unknown } | { ok: false; error: { code: string; message: string } };

export function encodeRequest(method: string, params?: unknown): string {
  return `${API_MAGIC}${JSON.stringify({ method, params })}\n`;
}

/** The request line (after the magic). */
export function parseRequest(line: string): ApiRequest {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch (err) {
    throw new AgentApiError(ApiCode.BAD_REQUEST, `malformed request: ${(err as Error).message}`);
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req)) throw new AgentApiError(ApiCode.BAD_REQUEST, 'malformed request: not a JSON object');
  const { method, params } = req as { method?: unknown; params?: unknown };
  if (typeof method !== 'string') throw new AgentApiError(ApiCode.BAD_REQUEST, 'method missing');
  return { method, params };
}

/** 64-bit counters (bigint) travel as decimal strings: see Wire in methods.ts. */
function bigintAsString(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

export function encodeAnswer(answer: ApiAnswer): string {
  return `${JSON.stringify(answer, bigintAsString)}\n`;
}

/** The answer to a request that failed: its `code` if it has one, else SLUICE_API. */
export function errorAnswer(err: unknown): ApiAnswer {
  const code = (err as { code?: unknown } | undefined)?.code;
  return { ok: false, error: { code: typeof code === 'string' ? code : ApiCode.FAILED, message: err instanceof Error ? err.message : String(err) } };
}

/** The agent's answer, whole: its result, or the AgentApiError it carries. */
export function parseAnswer(text: string): unknown {
  const malformed = () => new AgentApiError(ApiCode.FAILED, `malformed answer from the agent: ${text.slice(0, 200)}`);
  let answer: { ok?: unknown; result?: unknown; error?: { code?: string; message?: string } } | null;
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    throw malformed();
  }
  if (typeof answer !== 'object' || answer === null) throw malformed();
  if (answer.ok) return answer.result;
  throw new AgentApiError(answer.error?.code ?? ApiCode.FAILED, answer.error?.message ?? 'request failed');
}
