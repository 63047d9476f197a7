// Node facts the agent needs that do not come from policy objects: the pod
// CIDRs IPAM allocates from, and the resolvers the DNS proxy trusts. In
// standalone mode they come from flags (or /etc/resolv.conf); in Kubernetes
// mode the Node object's podCIDRs and the cluster DNS service will supply
// them. The agent reads each provider once at start-up, before IPAM and the
// DNS proxy exist.
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';

export interface PodCidrProvider {
  /** Where the CIDRs come from, for messages ('--pod-cidr'). */
  readonly origin: string;
  /** The node's pod CIDRs (one per family at most); empty if none is known. */
  podCidrs(): Promise<string[]>;
}

export interface TrustedResolverProvider {
  /** Where the resolvers come from, for messages ('--dns-trusted', '/etc/resolv.conf'). */
  readonly origin: string;
  /** Addresses of the resolvers the DNS proxy forwards to; empty: every intercepted query is refused. */
  trustedResolvers(): Promise<string[]>;
  /** A provider whose answer changes (the cluster DNS Service) calls `onChange` with the new list; returns the stop function. */
  watch?(onChange: (ips: string[]) => void): () => void;
}

/** A fixed list, split from a comma-separated flag value. */
function splitList(value: string | undefined): string[] {
  return (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

/** --pod-cidr CIDR[,CIDR6]: validated by IPAM, which owns CIDR parsing. */
export class FlagPodCidrs implements PodCidrProvider {
  readonly origin = '--pod-cidr';
  readonly #cidrs: string[];
  constructor(value: string | undefined) {
    this.#cidrs = splitList(value);
  }
  async podCidrs(): Promise<string[]> {
    return [...this.#cidrs];
  }
}

/** Thrown for a --dns-trusted entry that is not an IP address (a usage error, caught at parse time). */
export class ResolverAddressError extends Error {
  override readonly name = 'ResolverAddressError';
  readonly code = 'SLUICE_RESOLVER_ADDRESS';
}

/** --dns-trusted IP[,IP…]: every entry must be an address. */
export class FlagResolvers implements TrustedResolverProvider {
  readonly origin = '--dns-trusted';
  readonly #ips: string[];
  constructor(value: string) {
    this.#ips = splitList(value);
    for (const ip of this.#ips) if (!isIP(ip)) throw new ResolverAddressError(`--dns-trusted: ${JSON.stringify(ip)} is not an IP address`);
  }
  async trustedResolvers(): Promise<string[]> {
    return [...this.#ips];
  }
}

/**
 * The node's own resolvers (standalone's default): the `nameserver` lines
 * of resolv.conf that are addresses. An unreadable file is no resolver,
 * which the agent reports (queries are refused, never sent anywhere else).
 */
export class ResolvConfResolvers implements TrustedResolverProvider {
  /** The default of --dns-trusted: naming both tells the operator how to override it. */
  readonly origin: string;
  readonly path: string;
  constructor(path = '/etc/resolv.conf') {
    this.path = path;
    this.origin = `--dns-trusted, ${path}`;
  }
  async trustedResolvers(): Promise<string[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1] ?? '')
      .filter((ip) => isIP(ip));
  }
}

/** What `--dns-trusted` means: its list if given, else the node's resolv.conf. */
export function trustedResolversFromFlag(value: string | undefined, resolvConf?: string): TrustedResolverProvider {
  return value ? new FlagResolvers(value) : new ResolvConfResolvers(resolvConf);
}
