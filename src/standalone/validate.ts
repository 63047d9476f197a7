// Structural validation of the objects a standalone directory may hold: an
// object is of a kind we serve and well-formed enough to be stored. Policies
// (NetworkPolicy, FQDNPolicy) go through the policy parsers here too, so an
// invalid one is rejected with its file, as the API server would reject it.
import { isObject, parseFqdnPolicy, parseNetworkPolicy } from '../policy/index.js';
import type { Kind, KubeObject } from '../store/index.js';

const API_VERSIONS: Record<Kind, readonly string[]> = {
  Namespace: ['v1'],
  Pod: ['v1'],
  Service: ['v1'],
  NetworkPolicy: ['networking.k8s.io/v1'],
  FQDNPolicy: ['sluice.dev/v1alpha1'],
  EndpointSlice: ['discovery.k8s.io/v1'],
};

const NAMESPACED: ReadonlySet<Kind> = new Set(['Pod', 'Service', 'NetworkPolicy', 'FQDNPolicy', 'EndpointSlice']);

// RFC 1123 label (namespaces, most names) / subdomain (pods, policies).
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_KEY_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

export class ValidationError extends Error {
  override readonly name = 'ValidationError';
  readonly code = 'SLUICE_INVALID_OBJECT';
}

export function validateLabels(labels: unknown, where: string): void {
  if (labels === undefined) return;
  if (!isObject(labels)) throw new ValidationError(`${where}: labels must be a map`);
  for (const [k, v] of Object.entries(labels)) {
    const slash = k.lastIndexOf('/');
    const prefix = slash >= 0 ? k.slice(0, slash) : '';
    const name = slash >= 0 ? k.slice(slash + 1) : k;
    if ((slash >= 0 && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) || name.length > 63 || !LABEL_KEY_NAME.test(name)) {
      throw new ValidationError(`${where}: invalid label key ${JSON.stringify(k)}`);
    }
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)) throw new ValidationError(`${where}: invalid value for label ${JSON.stringify(k)}`);
  }
}

function validatePod(o: KubeObject, where: string): void {
  const spec = o.spec as { containers?: unknown } | undefined;
  if (spec === undefined) return;
  if (!isObject(spec)) throw new ValidationError(`${where}: spec must be an object`);
  if (spec.containers === undefined) return;
  if (!Array.isArray(spec.containers)) throw new ValidationError(`${where}: spec.containers must be a list`);
  const portNames = new Set<string>();
  spec.containers.forEach((c: unknown, i: number) => {
    const ports = isObject(c) ? c.ports : undefined;
    if (ports === undefined) return;
    if (!Array.isArray(ports)) throw new ValidationError(`${where}: spec.containers[${i}].ports must be a list`);
    ports.forEach((p: unknown, j: number) => {
      const at = `${where}: spec.containers[${i}].ports[${j}]`;
      if (!isObject(p)) throw new ValidationError(`${at} must be an object`);
      const n = p.containerPort;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) throw new ValidationError(`${at}.containerPort must be 1-65535`);
      if (p.protocol !== undefined && !['TCP', 'UDP', 'SCTP'].includes(p.protocol as string)) throw new ValidationError(`${at}.protocol must be TCP, UDP or SCTP`);
      if (p.name !== undefined) {
        // IANA_SVC_NAME: ≤15 chars, lower-case letters, digits, '-', at least one letter.
        if (typeof p.name !== 'string' || p.name.length > 15 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(p.name) || !/[a-z]/.test(p.name) || p.name.includes('--')) {
          throw new ValidationError(`${at}.name ${JSON.stringify(p.name)} is not a valid port name`);
        }
        const key = `${p.name}/${(p.protocol as string) ?? 'TCP'}`;
        if (portNames.has(key)) throw new ValidationError(`${at}.name ${JSON.stringify(p.name)} is used twice`);
        portNames.add(key);
      }
    });
  });
}

/** Checks one object; returns it with defaults applied (namespace label). */
/** A kind Sluice reads (of any apiVersion): what a manifest directory may hold for it. */
export function isSupportedKind(kind: unknown): boolean {
  return typeof kind === 'string' && Object.hasOwn(API_VERSIONS, kind);
}

export function validateObject(raw: unknown, where: string): KubeObject {
  if (!isObject(raw)) throw new ValidationError(`${where}: not an object`);
  const kind = raw.kind as Kind;
  if (typeof kind !== 'string' || !(kind in API_VERSIONS)) throw new ValidationError(`${where}: unsupported kind ${JSON.stringify(raw.kind)} (supported: ${Object.keys(API_VERSIONS).join(', ')})`);
  if (!API_VERSIONS[kind].includes(raw.apiVersion as string)) throw new ValidationError(`${where}: ${kind} needs apiVersion ${API_VERSIONS[kind].join(' or ')}, not ${JSON.stringify(raw.apiVersion)}`);
  const meta = raw.metadata;
  if (!isObject(meta)) throw new ValidationError(`${where}: metadata is required`);
  const name = meta.name;
  const nameRe = kind === 'Namespace' ? DNS_LABEL : DNS_SUBDOMAIN;
  if (typeof name !== 'string' || name.length > 253 || !nameRe.test(name)) throw new ValidationError(`${where}: invalid metadata.name ${JSON.stringify(name)}`);
  const at = `${where}: ${kind} ${name}`;
  let namespace = meta.namespace;
  if (NAMESPACED.has(kind)) {
    namespace ??= 'default';
    if (typeof namespace !== 'string' || !DNS_LABEL.test(namespace)) throw new ValidationError(`${at}: invalid metadata.namespace ${JSON.stringify(namespace)}`);
  } else if (namespace !== undefined) {
    throw new ValidationError(`${at}: a ${kind} has no namespace`);
  }
  validateLabels(meta.labels, at);
  let labels = meta.labels as Record<string, string> | undefined;
  // The API server adds this label to every namespace; selectors rely on it.
  if (kind === 'Namespace') labels = { ...labels, 'kubernetes.io/metadata.name': name };
  const obj: KubeObject = { ...raw, apiVersion: raw.apiVersion as string, kind, metadata: { ...meta, name, ...(namespace ? { namespace } : {}), ...(labels ? { labels } : {}) } };
  if (kind === 'Pod') validatePod(obj, at);
  if (kind === 'NetworkPolicy' || kind === 'FQDNPolicy') {
    try {
      if (kind === 'NetworkPolicy') parseNetworkPolicy(obj as never);
      else parseFqdnPolicy(obj as never);
    } catch (err) {
      throw new ValidationError(`${where}: ${(err as Error).message}`);
    }
  }
  return obj;
}
