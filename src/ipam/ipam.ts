// The agent's IPAM: addresses from the node's pod CIDRs (one per family),
// persisted as one file per allocation under <state-dir>/ipam/:
//
//   ipam/10.244.1.7       "<containerId>\n<ifname>\n"
//
// A file is written under a temp name and hard-linked into place, which fails
// if the name exists: two allocations of one address cannot both succeed, even
// across processes, and a crash leaves either no file or a whole one. Listing
// the directory is the index; `cat` shows the owner.
import { linkSync, mkdirSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cidrContains, cidrSize, formatIp, parseCidr, parseIp, type Cidr } from '../net/index.js';

export interface Owner {
  containerId: string;
  ifname: string;
}

export interface Allocation {
  family: 4 | 6;
  ip: string;
  /** The pod CIDR it came from. */
  cidr: string;
  owner: Owner;
}

export class IpamError extends Error {
  override readonly name = 'IpamError';
  readonly code: 'SLUICE_IPAM_EXHAUSTED' | 'SLUICE_IPAM_CONFIG';
  constructor(code: IpamError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

function ownerKey(o: Owner): string {
  return `${o.containerId}\n${o.ifname}`;
}

interface Pool {
  cidr: Cidr;
  /** Next candidate offset within the CIDR; allocation is round-robin so a
   * freed address is not handed out again right away. */
  cursor: bigint;
}

export class Ipam {
  readonly #dir: string;
  readonly #pools: Pool[];
  /** ip → allocation */
  readonly #byIp = new Map<string, Allocation>();
  /** ownerKey → allocations */
  readonly #byOwner = new Map<string, Allocation[]>();

  constructor(stateDir: string, cidrs: readonly string[]) {
    this.#dir = join(stateDir, 'ipam');
    const parsed = cidrs.map(parseCidr);
    for (const family of [4, 6] as const) {
      if (parsed.filter((c) => c.family === family).length > 1) throw new IpamError('SLUICE_IPAM_CONFIG', `more than one IPv${family} pod CIDR: ${cidrs.join(',')}`);
    }
    if (parsed.length === 0) throw new IpamError('SLUICE_IPAM_CONFIG', 'no pod CIDR');
    for (const c of parsed) {
      if (cidrSize(c) < 4n) throw new IpamError('SLUICE_IPAM_CONFIG', `pod CIDR ${c.text} is too small`);
    }
    this.#pools = parsed.sort((a, b) => a.family - b.family).map((cidr) => ({ cidr, cursor: 1n }));
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    this.#load();
  }

  get cidrs(): string[] {
    return this.#pools.map((p) => p.cidr.text);
  }

  /** Reads every allocation file; temp files and unreadable files are a
   * crash's leftovers from before the link and are removed. */
  #load(): void {
    for (const name of readdirSync(this.#dir)) {
      const path = join(this.#dir, name);
      if (name.startsWith('.')) {
        rmSync(path, { force: true });
        continue;
      }
      let owner: Owner | undefined;
      try {
        const [containerId, ifname] = readFileSync(path, 'utf8').split('\n');
        if (containerId && ifname) owner = { containerId, ifname };
      } catch {
        owner = undefined;
      }
      let family: 4 | 6;
      let value: bigint;
      try {
        ({ family, value } = parseIp(name));
      } catch {
        continue; // not ours: leave it alone
      }
      const pool = this.#pools.find((p) => cidrContains(p.cidr, family, value));
      if (!owner) {
        rmSync(path, { force: true });
        continue;
      }
      // An allocation outside today's CIDRs stays on disk (the pod still has
      // it) but is never handed out again; DEL releases it.
      this.#remember({ family, ip: name, cidr: pool?.cidr.text ?? '', owner });
    }
  }

  #remember(a: Allocation): void {
    this.#byIp.set(a.ip, a);
    const key = ownerKey(a.owner);
    this.#byOwner.set(key, [...(this.#byOwner.get(key) ?? []), a]);
  }

  /** What `owner` holds, if anything. */
  get(owner: Owner): Allocation[] {
    return this.#byOwner.get(ownerKey(owner)) ?? [];
  }

  list(): Allocation[] {
    return [...this.#byIp.values()];
  }

  /**
   * One address per pod CIDR (so dual-stack pods get one of each). An owner
   * that already holds addresses gets the same ones back: a retried ADD never
   * takes a second address. All or nothing.
   */
  allocate(owner: Owner): Allocation[] {
    const held = this.get(owner);
    if (held.length > 0) return held;
    const got: Allocation[] = [];
    try {
      for (const pool of this.#pools) got.push(this.#allocateFrom(pool, owner));
    } catch (err) {
      for (const a of got) this.#forget(a);
      throw err;
    }
    return got;
  }

  #allocateFrom(pool: Pool, owner: Owner): Allocation {
    const size = cidrSize(pool.cidr);
    // The network address, and for IPv4 the broadcast address, are never
    // handed out. Offsets 1 .. last usable, starting at the cursor.
    const last = pool.cidr.family === 4 ? size - 2n : size - 1n;
    const usable = last;
    const tmp = join(this.#dir, `.tmp-${process.pid}-${Date.now()}`);
    writeFileSync(tmp, `${owner.containerId}\n${owner.ifname}\n`, { mode: 0o600 });
    try {
      // Bounded: a /64 is effectively infinite, but we only ever step over
      // addresses already in memory (plus any the disk has that we don't).
      const limit = usable < 1_000_000n ? usable : 1_000_000n;
      for (let i = 0n; i < limit; i++) {
        const offset = ((pool.cursor - 1n + i) % usable) + 1n;
        const ip = formatIp(pool.cidr.family, pool.cidr.base + offset);
        if (this.#byIp.has(ip)) continue;
        try {
          linkSync(tmp, join(this.#dir, ip));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
          throw err;
        }
        pool.cursor = (offset % usable) + 1n;
        const a: Allocation = { family: pool.cidr.family, ip, cidr: pool.cidr.text, owner };
        this.#remember(a);
        return a;
      }
    } finally {
      rmSync(tmp, { force: true });
    }
    throw new IpamError('SLUICE_IPAM_EXHAUSTED', `no free address in ${pool.cidr.text}`);
  }

  #forget(a: Allocation): void {
    try {
      unlinkSync(join(this.#dir, a.ip));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.#byIp.delete(a.ip);
    const key = ownerKey(a.owner);
    const rest = (this.#byOwner.get(key) ?? []).filter((x) => x.ip !== a.ip);
    if (rest.length) this.#byOwner.set(key, rest);
    else this.#byOwner.delete(key);
  }

  /** Releases what `owner` holds; returns how many addresses. Idempotent. */
  release(owner: Owner): number {
    const held = this.get(owner);
    for (const a of held) this.#forget(a);
    return held.length;
  }
}
