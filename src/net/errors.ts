/** Text that is not an IP address or CIDR. The code is stable (it predates src/net, from the IPAM). */
export class CidrError extends Error {
  override readonly name = 'CidrError';
  readonly code = 'SLUICE_INVALID_CIDR';
}
