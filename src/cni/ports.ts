// What the CNI handlers need from the rest of the agent. Injected, so the
// handlers are small functions testable with fakes, and the agent wires the
// real addon, IPAM and endpoint registry.
import type { NativeAddon } from '../native/index.js';
import type { NetConf, PodArgs, ValidAttachment } from './config.js';
import type { Result } from './result.js';

/** The netlink part of the addon. */
export type Netlink = Pick<
  NativeAddon,
  'linkAddVeth' | 'linkGet' | 'linkList' | 'linkSet' | 'linkDel' | 'linkDelAsync' | 'addrAdd' | 'addrList' | 'routeAdd' | 'routeList' | 'neighAdd' | 'tcQuery'
>;

export interface IpamPort {
  /** CIDRs ("10.244.1.7/32"), one per family the node has. */
  allocate(owner: ValidAttachment): string[];
  release(owner: ValidAttachment): void;
  /** Owners that hold addresses. */
  owners(): ValidAttachment[];
}

/** Delegation to a standard IPAM plugin binary (conflist `ipam` section). */
export interface DelegatePort {
  run(command: 'ADD' | 'DEL' | 'CHECK' | 'GC', conf: NetConf, env: Record<string, string>): Promise<unknown>;
}

export interface EndpointRecord {
  containerId: string;
  ifname: string;
  netns: string;
  hostIfname: string;
  hostIfindex: number;
  hostMac: string;
  podMac: string;
  mtu: number;
  /** Pod addresses as CIDRs (/32, /128). */
  ips: string[];
  pod: PodArgs;
  /** The IPAM config when delegated, for the DEL/GC that must reach the same plugin. */
  delegatedIpam?: Record<string, unknown>;
  /** CNI_PATH at ADD time, to find the delegated plugin again. */
  cniPath?: string;
  result: Result;
  createdAt: string;
}

export interface EndpointsPort {
  get(containerId: string, ifname: string): EndpointRecord | undefined;
  list(): EndpointRecord[];
  /** Programs the datapath for the endpoint and persists it; returns once policy is in force. */
  register(rec: EndpointRecord): Promise<void>;
  /** Removes datapath state and the record. Idempotent. */
  unregister(containerId: string, ifname: string): Promise<void>;
  /** Whether the datapath has the endpoint programmed (map entry + programs attached). */
  programmed(rec: EndpointRecord): boolean;
}

export interface CniDeps {
  netlink: Netlink;
  ipam: IpamPort;
  delegate: DelegatePort;
  endpoints: EndpointsPort;
  /** Whether a netns path exists and is a network namespace. */
  netnsExists(path: string): boolean;
  now(): Date;
}
