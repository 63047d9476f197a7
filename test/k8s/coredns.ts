// Cluster DNS for the k8s test cluster: CoreDNS as a Deployment behind the
// `kube-dns` Service, with the kubernetes plugin (`pods verified`), autopath,
// a hosts block for names tests want resolvable, and NO forward: no query ever
// leaves the machine. The CoreDNS pod's own resolv.conf has no search line
// (with one, autopath answers SERVFAIL for a pod's search-path query of a
// non-cluster name).
import { COREDNS_IMAGE } from './images.js';

export interface CoreDnsOptions {
  /** name → address, answered by the hosts plugin (then fallthrough to the kubernetes plugin). */
  hosts?: Record<string, string>;
  /** The kube-dns Service's ClusterIP (kubelet's clusterDNS). */
  serviceIp: string;
  clusterDomain?: string;
}

export function corefile(opts: CoreDnsOptions): string {
  const domain = opts.clusterDomain ?? 'cluster.local';
  const hosts = Object.entries(opts.hosts ?? {}).map(([name, ip]) => `        ${ip} ${name}`);
  return [
    '.:53 {',
    '    errors',
    '    health {',
    '        lameduck 2s',
    '    }',
    '    ready',
    '    hosts {',
    ...hosts,
    '        fallthrough',
    '    }',
    `    kubernetes ${domain} in-addr.arpa ip6.arpa {`,
    '        pods verified',
    '        fallthrough in-addr.arpa ip6.arpa',
    '        ttl 30',
    '    }',
    '    autopath @kubernetes',
    '    prometheus :9153',
    '    cache 30',
    '    reload 2s',
    '    loadbalance',
    '}',
    '',
  ].join('\n');
}

/** The objects `kubectl apply` gets (a v1 List). */
export function coreDnsManifests(opts: CoreDnsOptions): Record<string, unknown> {
  const labels = { 'k8s-app': 'kube-dns' };
  const ns = 'kube-system';
  return {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'coredns', namespace: ns } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'system:coredns' },
        rules: [
          { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
          { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'system:coredns' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' },
        subjects: [{ kind: 'ServiceAccount', name: 'coredns', namespace: ns }],
      },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'coredns', namespace: ns }, data: { Corefile: corefile(opts) } },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'coredns', namespace: ns, labels },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              serviceAccountName: 'coredns',
              priorityClassName: 'system-cluster-critical',
              tolerations: [{ key: 'CriticalAddonsOnly', operator: 'Exists' }],
              // Its own resolver: no search line, nothing upstream.
              dnsPolicy: 'None',
              dnsConfig: { nameservers: ['127.0.0.1'] },
              containers: [
                {
                  name: 'coredns',
                  image: COREDNS_IMAGE,
                  imagePullPolicy: 'Never',
                  args: ['-conf', '/etc/coredns/Corefile'],
                  ports: [
                    { name: 'dns', containerPort: 53, protocol: 'UDP' },
                    { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
                    { name: 'metrics', containerPort: 9153, protocol: 'TCP' },
                  ],
                  volumeMounts: [{ name: 'config', mountPath: '/etc/coredns', readOnly: true }],
                  readinessProbe: { httpGet: { path: '/ready', port: 8181 }, periodSeconds: 1, failureThreshold: 3 },
                  livenessProbe: { httpGet: { path: '/health', port: 8080 }, initialDelaySeconds: 30, periodSeconds: 10, failureThreshold: 5 },
                  securityContext: { allowPrivilegeEscalation: false, capabilities: { add: ['NET_BIND_SERVICE'], drop: ['ALL'] }, readOnlyRootFilesystem: true },
                },
              ],
              volumes: [{ name: 'config', configMap: { name: 'coredns', items: [{ key: 'Corefile', path: 'Corefile' }] } }],
            },
          },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'kube-dns', namespace: ns, labels: { ...labels, 'kubernetes.io/name': 'CoreDNS' } },
        spec: {
          selector: labels,
          clusterIP: opts.serviceIp,
          ports: [
            { name: 'dns', port: 53, protocol: 'UDP' },
            { name: 'dns-tcp', port: 53, protocol: 'TCP' },
            { name: 'metrics', port: 9153, protocol: 'TCP' },
          ],
        },
      },
    ],
  };
}
