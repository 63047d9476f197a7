// The agent's side of the API: a request is checked against the method table
// (methods.ts) before its handler runs, so a handler gets params of its own
// type and never sees a malformed request.
import { AgentApiError, ApiCode } from './errors.js';
import { isMethod, METHODS, type Method, type Params, type Result } from './methods.js';
import type { ApiRequest } from './protocol.js';

/** One handler per method: the agent implements this object, the compiler checks it against the table. */
export type Handlers = { readonly [M in Method]: (params: Params<M>) => Result<M> | Promise<Result<M>> };

/**
 * Runs one request: an unknown method is SLUICE_API_UNKNOWN_METHOD, params
 * that do not fit are SLUICE_API_BAD_PARAMS, and whatever the handler throws
 * propagates (its `code` becomes the answer's).
 */
export async function dispatch(handlers: Handlers, request: ApiRequest): Promise<unknown> {
  const { method } = request;
  if (!isMethod(method)) throw new AgentApiError(ApiCode.UNKNOWN_METHOD, `unknown method ${method}`);
  return run(handlers, method, METHODS[method].parseParams(request.params));
}

// Generic over M so that the handler and its params are of the same method.
function run<M extends Method>(handlers: Handlers, method: M, params: Params<M>): Result<M> | Promise<Result<M>> {
  const handler = handlers[method] as (params: Params<M>) => Result<M> | Promise<Result<M>>;
  return handler(params);
}
