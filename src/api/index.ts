// The agent's socket API (SLUICE-API/1), one contract for both ends: the
// agent serves it (src/agent/server.ts dispatches to its Handlers), the CLI
// calls it. Neither side imports the other; both import this.
export { call, request, socketPath } from './client.js';
export { dispatch } from './dispatch.js';
export type { Handlers } from './dispatch.js';
export { AgentApiError, AgentUnreachableError, ApiCode } from './errors.js';
export { isMethod, METHODS } from './methods.js';
export type {
  ApiMethods,
  EndpointRow,
  FlowsParams,
  FqdnNameRow,
  FqdnParams,
  FqdnStatusReply,
  ManifestState,
  KubernetesState,
  ReflectorState,
  Method,
  MetricRow,
  NoParams,
  Params,
  PodDnsRow,
  PolicyCondition,
  Reply,
  Result,
  StatusReply,
  Wire,
} from './methods.js';
export { API_MAGIC, encodeAnswer, encodeRequest, errorAnswer, parseAnswer, parseRequest } from './protocol.js';
export type { ApiAnswer, ApiRequest } from './protocol.js';
