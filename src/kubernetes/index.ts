// The client itself (src/kubernetes/client.ts, over @kubernetes/client-node)
// is not exported here: it is loaded only in Kubernetes mode (loadKubeClient).
export { isKubeApiError, KubeApiError } from './api.js';
export type { KubeApi, KubeList, WatchEvent } from './api.js';
export { loadKubeClient } from './load-client.js';
export { nodeInfo, trimFqdnPolicy, trimNamespace, trimNetworkPolicy, trimNode, trimPod } from './objects.js';
export type { NodeInfo } from './objects.js';
export { Reflector } from './reflector.js';
export type { RawObject, ReflectorSink, ReflectorStatus } from './reflector.js';
export { ClusterDnsResolvers, FQDN_POLICIES_PATH, KubernetesSource, NodePodCidrs, NodeTable } from './source.js';
export type { KubernetesSourceStatus } from './source.js';
export { FqdnStatusWriter, statusWriterFor, statusWriters, statusWritersOr } from './status-writer.js';
export type { FqdnCondition } from './status-writer.js';
