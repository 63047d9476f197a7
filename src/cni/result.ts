// Results rendered in the version the runtime asked for.
//   0.3.x/0.4.0: ips[].version is required ("4"/"6").
//   1.0.0: ips[].version removed.
//   1.1.0: interfaces[].mtu (and socketPath, pciID) exist.
import { compareVersions, type CniVersion } from './versions.js';

export interface Interface {
  name: string;
  mac: string;
  mtu?: number;
  /** The netns path for the container-side interface. */
  sandbox?: string;
}

export interface IpConfig {
  /** CIDR, e.g. "10.244.1.7/32". */
  address: string;
  gateway?: string;
  /** Index into interfaces. */
  interface?: number;
}

export interface Route {
  dst: string;
  gw?: string;
}

export interface Result {
  interfaces: Interface[];
  ips: IpConfig[];
  routes: Route[];
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
}

export function renderResult(version: CniVersion, r: Result): Record<string, unknown> {
  const v1 = compareVersions(version, '1.0.0') >= 0;
  const v11 = compareVersions(version, '1.1.0') >= 0;
  return {
    cniVersion: version,
    interfaces: r.interfaces.map((i) => ({
      name: i.name,
      mac: i.mac,
      ...(v11 && i.mtu !== undefined ? { mtu: i.mtu } : {}),
      ...(i.sandbox !== undefined ? { sandbox: i.sandbox } : {}),
    })),
    ips: r.ips.map((ip) => ({
      ...(v1 ? {} : { version: ip.address.includes(':') ? '6' : '4' }),
      address: ip.address,
      ...(ip.gateway ? { gateway: ip.gateway } : {}),
      ...(ip.interface !== undefined ? { interface: ip.interface } : {}),
    })),
    routes: r.routes.map((rt) => ({ dst: rt.dst, ...(rt.gw ? { gw: rt.gw } : {}) })),
    dns: r.dns ?? {},
  };
}

/** Reads ips/routes out of a result of any supported version (e.g. from a delegated IPAM plugin). */
export function parseIpamResult(raw: unknown): { ips: IpConfig[]; routes: Route[]; dns?: Result['dns'] } {
  const o = (raw ?? {}) as { ips?: unknown; routes?: unknown; dns?: unknown };
  const ips = Array.isArray(o.ips) ? o.ips : [];
  const routes = Array.isArray(o.routes) ? o.routes : [];
  return {
    ips: ips.map((ip: { address?: unknown; gateway?: unknown }) => {
      if (typeof ip?.address !== 'string') throw new TypeError('IPAM result ip without address');
      return { address: ip.address, ...(typeof ip.gateway === 'string' ? { gateway: ip.gateway } : {}) };
    }),
    routes: routes.flatMap((r: { dst?: unknown; gw?: unknown }) =>
      typeof r?.dst === 'string' ? [{ dst: r.dst, ...(typeof r.gw === 'string' ? { gw: r.gw } : {}) }] : [],
    ),
    dns: o.dns && typeof o.dns === 'object' ? (o.dns as Result['dns']) : undefined,
  };
}
