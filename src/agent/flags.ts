// `sluice agent` flags. Every flag is also settable as SLUICE_<FLAG>.
import type { FlagSpec } from '../config/index.js';

export const AGENT_FLAGS: readonly FlagSpec[] = [
  { name: 'node-name', help: 'this node\'s name (Kubernetes mode default: the host name)', default: '' },
  { name: 'standalone', help: 'standalone mode: watch this directory of YAML instead of Kubernetes', default: '' },
  { name: 'kubeconfig', help: 'Kubernetes mode: the kubeconfig to use (default: the in-cluster service account in a pod, else ~/.kube/config)', default: '' },
  { name: 'pod-cidr', help: 'pod CIDRs of this node, IPv4 and/or IPv6: CIDR[,CIDR6] (Kubernetes mode default: the Node\'s spec.podCIDRs)', default: '' },
  { name: 'routing', help: 'Kubernetes mode: direct (a route to each other node\'s pod CIDRs via its InternalIP; the nodes share a link) or none (routes are someone else\'s)', default: 'direct' },
  { name: 'state-dir', help: 'persistent state (IPAM, endpoints, queued DELs)', default: '/var/lib/sluice' },
  { name: 'run-dir', help: 'runtime directory holding agent.sock', default: '/run/sluice' },
  { name: 'bpffs', help: 'directory on a bpf filesystem for pinned maps', default: '/sys/fs/bpf/sluice' },
  { name: 'max-endpoints', help: 'size of the endpoint map', default: '4096' },
  { name: 'max-policy-entries', help: 'size of the policy map (allow entries of all endpoints)', default: '262144' },
  { name: 'max-fqdn-entries', help: 'size of the FQDN allow map ((rule, address) pairs)', default: '131072' },
  { name: 'fqdn-min-ttl', help: 'shortest lifetime of a learned address (duration: 500ms, 30s, 1m30s or seconds)', default: '60s' },
  { name: 'fqdn-grace', help: 'added to every learned address\'s lifetime', default: '10s' },
  { name: 'fqdn-max-ips-per-name', help: 'addresses kept per name; expired ones go first, then the least recently answered', default: '64' },
  { name: 'dns-intercept', help: 'whose DNS goes through the proxy: selected (pods an FQDNPolicy selects) or all', default: 'selected' },
  { name: 'dns-trusted', help: 'resolvers whose answers may open traffic: IP[,IP…] (default: the kube-system/kube-dns Service\'s IPs and endpoints; standalone: the nameservers of /etc/resolv.conf)', default: '' },
  { name: 'dns-untrusted', help: 'a query to any other server: refuse, or redirect to the first trusted resolver', default: 'refuse' },
  { name: 'dns-pod-qps', help: 'DNS queries (UDP) and connections (TCP) per second one pod may send, bursts of twice that; dropped in eBPF beyond it and counted per pod; 0: no limit', default: '200' },
  { name: 'dns-pod-max-inflight', help: 'DNS queries of one pod waiting on resolvers at once; beyond it a query is dropped and counted per pod', default: '64' },
  { name: 'dns-tcp-max-per-pod', help: 'open TCP DNS connections of one pod; beyond it a new one is closed at once and counted', default: '8' },
  { name: 'dns-tcp-max', help: 'open TCP DNS connections of all pods together (each holds descriptors of the agent)', default: '512' },
  { name: 'metrics-addr', help: 'where /healthz and /readyz are served (HOST:PORT); empty: not served', default: '127.0.0.1:9963' },
  { name: 'log-level', help: 'fatal, error, warn, info, debug or trace', default: 'info' },
  { name: 'help', short: 'h', help: 'show this help', boolean: true },
];
