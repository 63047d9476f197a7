export class PolicyError extends Error {
  override readonly name = 'PolicyError';
  readonly code = 'SLUICE_INVALID_POLICY';
}
