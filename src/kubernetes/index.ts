export { KubeApiError, KubeClient, loadKubeConfig } from './client.js';
export type { KubeApi, KubeList, WatchEvent } from './client.js';
export { nodeInfo, trimFqdnPolicy, trimNamespace, trimNetworkPolicy, trimNode, trimPod } from './objects.js';
export type { NodeInfo } from './objects.js';
export { Reflector } from './reflector.js';
export type { RawObject, ReflectorSink, ReflectorStatus } from './reflector.js';
export { ClusterDnsResolvers, FQDN_POLICIES_PATH, KubernetesSource, NodePodCidrs, NodeTable } from './source.js';
export type { KubernetesSourceStatus } from './source.js';
