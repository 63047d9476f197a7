// Offline: a directory of manifests, read as the standalone agent reads it
// (every *.yaml/*.yml, multi-document, each object validated the same way),
// made a world with no agent, no root and no cluster. A file that does not
// parse or validate fails the whole load, naming the file: a policy
// repository's CI must not pass on a manifest the agent would reject.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { familyOf } from '../net/index.js';
import { parseFqdnPolicy, parseNetworkPolicy, type Labels, type NamedPort, type Protocol } from '../policy/index.js';
import { parseManifest } from '../standalone/index.js';
import { objectKey, type KubeObject } from '../store/index.js';
import { ExplainCode, ExplainError } from './errors.js';
import { buildWorld, type World, type WorldInput, type WorldPodInput } from './world.js';

const YAML_FILE = /\.ya?ml$/;

interface PodSpec {
  containers?: Array<{ ports?: Array<{ name?: string; containerPort: number; protocol?: Protocol }> }>;
}

interface PodStatus {
  podIP?: unknown;
  podIPs?: Array<{ ip?: unknown }>;
}

const bad = (message: string) => new ExplainError(ExplainCode.BAD_MANIFESTS, message);

/** Every object of every manifest in `dir`, in file order. Throws ExplainError naming the file. */
export function readManifests(dir: string): KubeObject[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => YAML_FILE.test(f)).sort();
  } catch (err) {
    throw bad(`--manifests ${dir}: ${(err as Error).message}`);
  }
  const objects: KubeObject[] = [];
  const holder = new Map<string, string>();
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(join(dir, file), 'utf8');
    } catch (err) {
      throw bad(`${file}: ${(err as Error).message}`);
    }
    let parsed: KubeObject[];
    try {
      parsed = parseManifest(text, file, { skipOtherKinds: true });
    } catch (err) {
      throw bad((err as Error).message);
    }
    for (const o of parsed) {
      const ref = `${o.kind}/${objectKey(o)}`;
      const other = holder.get(ref);
      if (other) throw bad(`${file}: ${ref} is already defined in ${other}`);
      holder.set(ref, file);
      if (o.kind === 'Pod') podIps(o, file); // checked here, where the file is known
      objects.push(o);
    }
  }
  return objects;
}

/** The world of a manifest directory: Namespaces, Pods (labels, named ports, status addresses), NetworkPolicies, FQDNPolicies. */
export function loadWorld(dir: string): World {
  return buildWorld(worldInputOf(readManifests(dir)));
}

export function worldInputOf(objects: readonly KubeObject[]): WorldInput {
  const of = (kind: string) => objects.filter((o) => o.kind === kind);
  return {
    namespaces: new Map(of('Namespace').map((ns): [string, Labels] => [ns.metadata.name, ns.metadata.labels ?? {}])),
    pods: of('Pod').map(podInput),
    // validateObject has parsed every policy once already: these cannot throw.
    policies: of('NetworkPolicy').map((o) => parseNetworkPolicy(o as never)),
    fqdnPolicies: of('FQDNPolicy').map((o) => parseFqdnPolicy(o as never)),
    nodeIps: [],
  };
}

function podInput(pod: KubeObject): WorldPodInput {
  const spec = pod.spec as PodSpec | undefined;
  const namedPorts: NamedPort[] = (spec?.containers ?? []).flatMap((c) =>
    (c.ports ?? []).filter((p) => p.name).map((p) => ({ name: p.name!, protocol: p.protocol ?? 'TCP', port: p.containerPort })),
  );
  return { namespace: pod.metadata.namespace ?? 'default', name: pod.metadata.name, labels: pod.metadata.labels ?? {}, namedPorts, ips: podIps(pod) };
}

/** status.podIPs, else status.podIP, as the API server shows a pod's addresses. */
function podIps(pod: KubeObject, file?: string): string[] {
  const status = pod.status as PodStatus | undefined;
  const raw = status?.podIPs?.length ? status.podIPs.map((p) => p?.ip) : status?.podIP !== undefined ? [status.podIP] : [];
  return raw.map((ip) => {
    if (typeof ip !== 'string' || !familyOf(ip)) throw bad(`${file ? `${file}: ` : ''}Pod ${objectKey(pod)}: status.podIPs holds ${JSON.stringify(ip)}, which is not an IP address`);
    return ip;
  });
}
