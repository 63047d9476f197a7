// Errors of the agent's API. One class for both ends: the agent throws it
// (a bad request, an unknown pod) and the answer carries its `code`; the CLI
// rebuilds it from the answer, so code on either side matches on `code`.

/** The codes an API answer can carry. Any other failure of a handler answers SLUICE_API. */
export const ApiCode = {
  /** Whatever failed without a code of its own. */
  FAILED: 'SLUICE_API',
  /** The request line is not JSON, not an object, or has no method name. */
  BAD_REQUEST: 'SLUICE_API_BAD_REQUEST',
  UNKNOWN_METHOD: 'SLUICE_API_UNKNOWN_METHOD',
  /** The params do not fit the method (src/api/methods.ts): a wrong type, an unknown name. */
  BAD_PARAMS: 'SLUICE_API_BAD_PARAMS',
  /** The params name something this node does not have (a pod). */
  NOT_FOUND: 'SLUICE_API_NOT_FOUND',
} as const;

export class AgentApiError extends Error {
  override readonly name = 'AgentApiError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export class AgentUnreachableError extends Error {
  override readonly name = 'AgentUnreachableError';
  readonly code = 'SLUICE_AGENT_UNREACHABLE';
}
