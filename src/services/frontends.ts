// Services and their EndpointSlices → the frontends the datapath translates
// (src/datapath/service-table.ts). Pure: objects in, frontends out.
//
// - Frontends: every ClusterIP (both families), every external IP and
//   load-balancer ingress IP on each Service port, and with a nodePort each
//   of the nodes' addresses on it. Headless and ExternalName Services have
//   none; SCTP ports are left out (this datapath has no SCTP).
// - Backends: from the Service's EndpointSlices (label
//   kubernetes.io/service-name), the endpoints that are ready (a missing
//   condition counts as ready, as the API says), on the slice port whose name
//   and protocol are the Service port's — so a named targetPort is the number
//   each backend's slice gives. No ready endpoint: the serving ones that are
//   terminating (as kube-proxy), else none: connections are rejected at once.
import type { Frontend } from '../datapath/index.js';
import { familyOf as netFamily } from '../net/index.js';
import type { KubeObject } from '../store/index.js';

const PROTOCOLS: Record<string, number> = { TCP: 6, UDP: 17 };
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

interface ServicePort {
  name?: string;
  port?: number;
  protocol?: string;
  nodePort?: number;
}

interface ServiceShape {
  spec?: { type?: string; clusterIP?: string; clusterIPs?: string[]; externalIPs?: string[]; ports?: ServicePort[] };
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string }> } };
}

interface SliceShape {
  addressType?: string;
  endpoints?: Array<{ addresses?: string[]; conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean } }>;
  ports?: Array<{ name?: string; port?: number; protocol?: string }> | null;
}

const familyOf = (ip: string): 4 | 6 | undefined => netFamily(ip) || undefined;

/** Every frontend of these Services, with its backends. `nodeIps`: the addresses a nodePort listens on. */
export function compileFrontends(services: readonly KubeObject[], slices: readonly KubeObject[], nodeIps: readonly string[]): Frontend[] {
  const slicesOf = new Map<string, SliceShape[]>();
  for (const s of slices) {
    const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
    if (!svc) continue;
    const key = `${s.metadata.namespace ?? ''}/${svc}`;
    let list = slicesOf.get(key);
    if (!list) slicesOf.set(key, (list = []));
    list.push(s as unknown as SliceShape);
  }
  const out = new Map<string, Frontend>();
  for (const obj of services) {
    const svc = obj as unknown as ServiceShape;
    const spec = svc.spec ?? {};
    if (spec.type === 'ExternalName') continue;
    const clusterIps = (spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : []).filter((ip) => ip !== 'None' && familyOf(ip));
    const external = [...(spec.externalIPs ?? []), ...(svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '')].filter((ip) => familyOf(ip));
    const mySlices = slicesOf.get(`${obj.metadata.namespace ?? ''}/${obj.metadata.name}`) ?? [];
    if (!clusterIps.length) continue; // headless: no frontend of its own
    for (const p of spec.ports ?? []) {
      const protocol = PROTOCOLS[p.protocol ?? 'TCP'];
      if (!protocol || !p.port) continue;
      const backends = backendsOf(mySlices, p.name ?? '', p.protocol ?? 'TCP');
      const add = (ip: string, port: number) => {
        const family = familyOf(ip)!;
        const key = { family, protocol, ip, port };
        out.set(`${family}/${protocol}/${ip}/${port}`, { key, backends: backends.filter((b) => b.family === family), service: `${obj.metadata.namespace ?? ''}/${obj.metadata.name}` });
      };
      for (const ip of [...clusterIps, ...external]) add(ip, p.port);
      if (p.nodePort && (spec.type === 'NodePort' || spec.type === 'LoadBalancer')) for (const ip of nodeIps) if (familyOf(ip)) add(ip, p.nodePort);
    }
  }
  return [...out.values()];
}

function backendsOf(slices: readonly SliceShape[], portName: string, protocol: string): Frontend['backends'] {
  const pick = (want: (c: { ready?: boolean; serving?: boolean; terminating?: boolean }) => boolean): Frontend['backends'] => {
    const out: Frontend['backends'] = [];
    for (const s of slices) {
      if (s.addressType !== 'IPv4' && s.addressType !== 'IPv6') continue;
      const sp = (s.ports ?? []).find((x) => (x.name ?? '') === portName && (x.protocol ?? 'TCP') === protocol);
      if (!sp?.port) continue;
      for (const e of s.endpoints ?? []) {
        if (!want(e.conditions ?? {})) continue;
        for (const ip of e.addresses ?? []) {
          const family = familyOf(ip);
          if (family) out.push({ family, ip, port: sp.port });
        }
      }
    }
    return out.sort((a, b) => (a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1));
  };
  const ready = pick((c) => c.ready !== false);
  return ready.length ? ready : pick((c) => c.serving === true && c.terminating === true);
}
