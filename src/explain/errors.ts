/** Codes of ExplainError: what a caller maps to a usage error (CLI) or an API error (agent). */
export const ExplainCode = {
  /** A query or an assertions file that is not well-formed. */
  BAD_QUERY: 'SLUICE_EXPLAIN_BAD_QUERY',
  /** It names a pod (or a pod's port) the world does not have. */
  NOT_FOUND: 'SLUICE_EXPLAIN_NOT_FOUND',
  /** A manifest directory that cannot be read or a manifest that does not parse. */
  BAD_MANIFESTS: 'SLUICE_EXPLAIN_BAD_MANIFESTS',
} as const;

export class ExplainError extends Error {
  override readonly name = 'ExplainError';
  readonly code: (typeof ExplainCode)[keyof typeof ExplainCode];
  constructor(code: ExplainError['code'], message: string) {
    super(message);
    this.code = code;
  }
}
