// Mirror of bpf/shared/drop_reasons.h. Change both together: a test parses the
// header and compares. Retired numbers are never reused.

export const REASON_FORWARDED = 0;

export const DropReason = {
  NO_ENDPOINT: 130,
  POLICY_DENIED: 131,
  ENDPOINT_DISABLED: 132,
  NO_FQDN_ALLOW: 133,
  FQDN_EXPIRED: 134,
  MAP_FULL: 135,
  UNSUPPORTED_L3: 136,
  INVALID_PACKET: 137,
  INTERNAL: 138,
  POLICY_FAILED: 139,
  DNS_PROXY_DOWN: 140,
  DNS_NO_NAT: 141,
  SPOOFED_SOURCE: 142,
  DNS_RATE_LIMITED: 143,
  FRAG_NOT_FOUND: 144,
  BAD_FRAGMENT: 145,
} as const;

export type DropReasonName = keyof typeof DropReason;

const names = new Map<number, string>([
  [REASON_FORWARDED, 'forwarded'],
  ...Object.entries(DropReason).map(([k, v]) => [v, k.toLowerCase().replaceAll('_', '-')] as [number, string]),
]);

/** A stable, human-readable name for a verdict reason ("policy-denied"). */
export function reasonName(reason: number): string {
  return names.get(reason) ?? `unknown-${reason}`;
}
