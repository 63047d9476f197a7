export class PolicyError extends Error {
  override readonly name = 'PolicyError';
  readonly code = 'SLUICE_INVALID_POLICY';
}

/** A YAML/JSON mapping (not null, not a list): what every parser checks first. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
