// What the agent keeps of each API object: the fields policy and routing
// read, nothing else (no managedFields, no status conditions, no
// resourceVersion), so the store holds little and an update of a field
// nobody reads is an equal rewrite that wakes nobody.
import type { KubeObject } from '../store/index.js';
import type { RawObject } from './reflector.js';

interface Meta {
  name?: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function meta(raw: RawObject): Meta {
  return (raw.metadata ?? {}) as Meta;
}

function labelsOf(m: Meta): Record<string, string> | undefined {
  return m.labels && Object.keys(m.labels).length ? { ...m.labels } : undefined;
}

/** Annotations of ours (sluice.dev/…): the only ones anything reads. */
function ourAnnotations(m: Meta): Record<string, string> | undefined {
  const out = Object.fromEntries(Object.entries(m.annotations ?? {}).filter(([k]) => k.startsWith('sluice.dev/')));
  return Object.keys(out).length ? out : undefined;
}

function base(kind: string, apiVersion: string, m: Meta, extra: Partial<Meta> = {}): KubeObject {
  const labels = labelsOf(m);
  return {
    apiVersion,
    kind,
    metadata: { name: m.name ?? '', ...(m.namespace ? { namespace: m.namespace } : {}), ...(labels ? { labels } : {}), ...extra },
  };
}

export function trimNamespace(raw: RawObject): KubeObject {
  return base('Namespace', 'v1', meta(raw));
}

interface PodShape {
  spec?: { nodeName?: string; hostNetwork?: boolean; containers?: Array<{ ports?: Array<{ name?: string; containerPort?: number; protocol?: string }> }> };
  status?: { phase?: string; podIP?: string; podIPs?: Array<{ ip?: string }> };
}

/**
 * A pod: labels, node, host networking, named container ports and, while it
 * runs, its addresses (a finished pod's addresses may already be another's).
 */
export function trimPod(raw: RawObject): KubeObject {
  const m = meta(raw);
  const p = raw as PodShape;
  const finished = p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';
  const ips = finished ? [] : [...new Set([...(p.status?.podIPs ?? []).map((x) => x.ip ?? ''), p.status?.podIP ?? ''].filter(Boolean))];
  const containers = (p.spec?.containers ?? [])
    .map((c) => ({ ports: (c.ports ?? []).filter((x) => x.name).map((x) => ({ name: x.name, containerPort: x.containerPort, protocol: x.protocol ?? 'TCP' })) }))
    .filter((c) => c.ports.length);
  return {
    ...base('Pod', 'v1', m, m.uid ? { uid: m.uid } : {}),
    spec: { ...(p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {}), ...(p.spec?.hostNetwork ? { hostNetwork: true } : {}), ...(containers.length ? { containers } : {}) },
    ...(ips.length ? { status: { podIPs: ips.map((ip) => ({ ip })) } } : {}),
  };
}

export function trimNetworkPolicy(raw: RawObject): KubeObject {
  const m = meta(raw);
  const annotations = ourAnnotations(m);
  return { ...base('NetworkPolicy', 'networking.k8s.io/v1', m, annotations ? { annotations } : {}), spec: raw.spec };
}

export function trimFqdnPolicy(raw: RawObject): KubeObject {
  const m = meta(raw);
  return { ...base('FQDNPolicy', 'sluice.dev/v1alpha1', m, { ...(m.uid ? { uid: m.uid } : {}), ...(m.generation ? { generation: m.generation } : {}) }), spec: raw.spec };
}

interface ServiceShape {
  spec?: { type?: string; clusterIP?: string; clusterIPs?: string[]; externalIPs?: string[]; ports?: Array<{ name?: string; port?: number; protocol?: string; nodePort?: number }> };
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string }> } };
}

/** A Service as its translation reads it (src/services): addresses and ports. */
export function trimService(raw: RawObject): KubeObject {
  const sv = raw as ServiceShape;
  const spec = sv.spec ?? {};
  const lb = (sv.status?.loadBalancer?.ingress ?? []).map((i) => i.ip).filter((ip): ip is string => !!ip);
  return {
    ...base('Service', 'v1', meta(raw)),
    spec: {
      ...(spec.type ? { type: spec.type } : {}),
      ...(spec.clusterIP ? { clusterIP: spec.clusterIP } : {}),
      ...(spec.clusterIPs?.length ? { clusterIPs: [...spec.clusterIPs] } : {}),
      ...(spec.externalIPs?.length ? { externalIPs: [...spec.externalIPs] } : {}),
      ports: (spec.ports ?? []).map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, protocol: p.protocol ?? 'TCP', ...(p.nodePort ? { nodePort: p.nodePort } : {}) })),
    },
    ...(lb.length ? { status: { loadBalancer: { ingress: lb.map((ip) => ({ ip })) } } } : {}),
  };
}

interface SliceShape {
  addressType?: string;
  endpoints?: Array<{ addresses?: string[]; conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean } }>;
  ports?: Array<{ name?: string; port?: number; protocol?: string }> | null;
}

/** An EndpointSlice: its Service (label), addresses with their conditions, ports. */
export function trimEndpointSlice(raw: RawObject): KubeObject {
  const sl = raw as SliceShape;
  return {
    ...base('EndpointSlice', 'discovery.k8s.io/v1', meta(raw)),
    addressType: sl.addressType,
    endpoints: (sl.endpoints ?? []).map((e) => ({ addresses: [...(e.addresses ?? [])], conditions: { ...(e.conditions ?? {}) } })),
    ports: (sl.ports ?? []).map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, protocol: p.protocol ?? 'TCP' })),
  } as KubeObject;
}

/** A Node as routing and the status writer read it. */
export interface NodeInfo {
  name: string;
  podCidrs: string[];
  internalIps: string[];
  ready: boolean;
}

interface NodeShape {
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { addresses?: Array<{ type?: string; address?: string }>; conditions?: Array<{ type?: string; status?: string }> };
}

export function nodeInfo(raw: RawObject): NodeInfo {
  const n = raw as NodeShape;
  const podCidrs = n.spec?.podCIDRs?.length ? [...n.spec.podCIDRs] : n.spec?.podCIDR ? [n.spec.podCIDR] : [];
  return {
    name: meta(raw).name ?? '',
    podCidrs,
    internalIps: (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' && a.address).map((a) => a.address!),
    ready: (n.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
  };
}

export function trimNode(raw: RawObject): KubeObject {
  const info = nodeInfo(raw);
  return { apiVersion: 'v1', kind: 'Node', metadata: { name: info.name }, spec: { podCIDRs: info.podCidrs }, status: { internalIps: info.internalIps, ready: info.ready } };
}
