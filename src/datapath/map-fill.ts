// How full each pinned map is (`sluice status`, sluice_map_entries and
// sluice_map_capacity): entries counted in the kernel, capacity its
// max_entries. Counting means reading the map, so it is a generator the
// caller runs in slices (the agent's thread also serves DNS):
//  - hash and LRU maps: one batch lookup (~0.35 µs an entry: 65,536
//    conntrack entries in ~30 ms, measured on this machine's kernel);
//  - LPM tries (policy, ipBlock prefixes) support no batch lookup: walked
//    key by key with get_next_key (~3 µs a key), yielding every WALK_STEP keys.
// A map that changes under the count gives an approximate number, never
// more than its capacity (a walk whose key vanished restarts at the first).
import type { Datapath } from './datapath.js';
import { MAP_CIDR, MAP_CONNTRACK, MAP_DNS_BUDGET, MAP_DNS_NAT, MAP_ENDPOINTS, MAP_FQDN, MAP_FQDN_RULES, MAP_FRAG, MAP_IPCACHE, MAP_LB_AFF, MAP_LB_BE, MAP_LB_FLOW, MAP_LB_NETNS, MAP_LB_REV, MAP_LB_SVC, MAP_NEXTHOP, MAP_POLICY } from './datapath.js';

/** Every map with entries to count (not the ring buffer, nor the arrays: the config slot and the counters, whose slots always exist). */
const FILL_MAPS: readonly string[] = [
  MAP_ENDPOINTS,
  MAP_IPCACHE,
  MAP_CIDR,
  MAP_POLICY,
  MAP_CONNTRACK,
  MAP_FQDN,
  MAP_FQDN_RULES,
  MAP_DNS_NAT,
  MAP_DNS_BUDGET,
  MAP_FRAG,
  MAP_NEXTHOP,
  MAP_LB_SVC,
  MAP_LB_BE,
  MAP_LB_NETNS,
  MAP_LB_AFF,
  MAP_LB_REV,
  MAP_LB_FLOW,
];

const TRIES = new Set([MAP_POLICY, MAP_CIDR]);
/** Keys walked between two yields. */
const WALK_STEP = 1024;

export interface MapFill {
  /** The pinned name without `sluice_` and its layout version: "ct", "policy", "lb_svc". */
  map: string;
  entries: number;
  /** max_entries. */
  capacity: number;
}

/** "sluice_ct_v1" → "ct". */
function mapLabel(pinnedName: string): string {
  return pinnedName.replace(/^sluice_/, '').replace(/_v\d+$/, '');
}

/**
 * Counts the entries of `maps` (default FILL_MAPS), yielding between maps
 * and within long walks; a map the datapath does not have is left out.
 */
export function* mapFillSteps(dp: Datapath, maps: readonly string[] = FILL_MAPS): Generator<void, MapFill[], void> {
  const n = dp.bpf;
  const out: MapFill[] = [];
  for (const name of maps) {
    let fd: number;
    try {
      fd = dp.mapFd(name);
    } catch {
      continue;
    }
    const info = n.mapInfo(fd);
    let entries = 0;
    if (TRIES.has(name)) {
      for (let k = n.mapGetNextKey(fd, null, info.keySize); k && entries < info.maxEntries; k = n.mapGetNextKey(fd, k, info.keySize)) {
        if (++entries % WALK_STEP === 0) yield;
      }
    } else {
      entries = Math.min(n.mapLookupBatch(fd, info.keySize, info.valueSize, info.maxEntries).count, info.maxEntries);
    }
    out.push({ map: mapLabel(name), entries, capacity: info.maxEntries });
    yield;
  }
  return out;
}
