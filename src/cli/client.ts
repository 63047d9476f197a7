// The untyped way to the agent, kept for the integration tests (test/**) and
// scripts that ask for any method: the CLI's commands use src/api's typed
// `call`. Same socket, same SLUICE-API/1 request, same errors.
import { request } from '../api/index.js';

export { AgentApiError, AgentUnreachableError } from '../api/index.js';

export function callAgent(runDir: string, method: string, params?: Record<string, unknown>): Promise<unknown> {
  return request(runDir, method, params);
}
