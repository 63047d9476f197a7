// The benchmark's zone and dnsperf query files. One zone, `bench.test`,
// served by nsd, with three sets of names, each matched by the FQDNPolicy:
//
//   n<i>.q.bench.test     the throughput set: 1-4 A records each (i % 4 + 1),
//                         every 10th name also 2 AAAA records and queried
//                         for AAAA, the rest for A;
//   p<i>.pre.bench.test   the preload set: PRELOAD_IPS A records each, so a
//                         pass over it fills the FQDN map without touching
//                         the per-name cap;
//   l<i>.new.bench.test   the learning set: 1 A record each, never seen
//                         before, so every answer is a new map entry;
//   n<i>.x.bench.test     the main set again (own addresses), matched by no
//                         rule: the proxy forwards and caches, writes no map.
//
// Every address is distinct across the whole zone. The A records come from
// 10.128.0.0/9 and the AAAA from fd00:5b::/32: data only, never contacted
// (the pods only ever send DNS, to the server's own address).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Zone, ZoneRecord } from '../../test/helpers/dns.js';

export const ZONE = 'bench.test';
/** Subdomain of each set; `unmatched` is the main set again under a name no rule matches. */
export const SETS = { main: 'q', unmatched: 'x', preload: 'pre', learn: 'new' } as const;

export interface ZonePlan {
  /** Also the size of the unmatched set. */
  main: number;
  preload: number;
  preloadIps: number;
  learn: number;
}

export interface ZoneFiles {
  /** For startAuthServer. */
  zone: Zone;
  /** dnsperf input ("name type" per line) for each set. */
  queries: Record<keyof typeof SETS, string>;
  /** Addresses the set's queries are answered with (what a pass can teach). */
  addresses: Record<keyof typeof SETS, number>;
}

const MAX_V4 = 1 << 23; // 10.128.0.0/9
/** Far above the run, so nothing expires during it (the agent adds --fqdn-grace). */
export const TTL = 300;

export function writeZone(dir: string, plan: ZonePlan): ZoneFiles {
  let v4 = 0;
  let v6 = 0;
  const a = (): string => {
    if (v4 >= MAX_V4) throw new Error('zone: out of A addresses');
    const k = v4++;
    return `10.${128 + (k >>> 16)}.${(k >>> 8) & 255}.${k & 255}`;
  };
  const aaaa = (): string => {
    const k = v6++;
    return `fd00:5b:0:${(k >>> 16).toString(16)}::${(k & 0xffff).toString(16)}`;
  };
  const records: ZoneRecord[] = [];
  const add = (name: string, type: 'A' | 'AAAA', value: string): void => void records.push({ name, type, value });
  const queries = { main: [] as string[], unmatched: [] as string[], preload: [] as string[], learn: [] as string[] };
  const addresses = { main: 0, unmatched: 0, preload: 0, learn: 0 };

  for (const set of ['main', 'unmatched'] as const) {
    for (let i = 0; i < plan.main; i++) {
      const label = `n${i}.${SETS[set]}`;
      for (let k = 0; k <= i % 4; k++) add(label, 'A', a());
      if (i % 10 === 9) {
        add(label, 'AAAA', aaaa());
        add(label, 'AAAA', aaaa());
        addresses[set] += 2;
        queries[set].push(`${label}.${ZONE} AAAA`);
      } else {
        addresses[set] += (i % 4) + 1;
        queries[set].push(`${label}.${ZONE} A`);
      }
    }
  }
  for (let i = 0; i < plan.preload; i++) {
    const label = `p${i}.${SETS.preload}`;
    for (let k = 0; k < plan.preloadIps; k++) add(label, 'A', a());
    addresses.preload += plan.preloadIps;
    queries.preload.push(`${label}.${ZONE} A`);
  }
  for (let i = 0; i < plan.learn; i++) {
    const label = `l${i}.${SETS.learn}`;
    add(label, 'A', a());
    addresses.learn++;
    queries.learn.push(`${label}.${ZONE} A`);
  }

  const files = {} as Record<keyof typeof SETS, string>;
  for (const set of Object.keys(queries) as Array<keyof typeof SETS>) {
    files[set] = join(dir, `queries-${set}.txt`);
    writeFileSync(files[set], `${queries[set].join('\n')}\n`);
  }
  return { zone: { origin: ZONE, records, defaultTtl: TTL }, queries: files, addresses };
}
