// Host-side veth names: "slc" + 11 hex chars of SHA-256(containerId/ifname).
// Deterministic, so DEL and GC find the link without any state, and 15 chars
// (IFNAMSIZ - 1).
import { createHash } from 'node:crypto';

export const HOST_VETH_PREFIX = 'slc';

export function hostVethName(containerId: string, ifname: string): string {
  return `${HOST_VETH_PREFIX}${createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 11)}`;
}
