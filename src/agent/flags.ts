// `sluice agent` flags. Every flag is also settable as SLUICE_<FLAG>.
import type { FlagSpec } from '../cli/args.js';

export const AGENT_FLAGS: readonly FlagSpec[] = [
  { name: 'node-name', help: 'this node\'s name', default: '' },
  { name: 'standalone', help: 'standalone mode: watch this directory of YAML instead of Kubernetes', default: '' },
  { name: 'pod-cidr', help: 'pod CIDRs of this node, IPv4 and/or IPv6: CIDR[,CIDR6]', default: '' },
  { name: 'state-dir', help: 'persistent state (IPAM, endpoints, queued DELs)', default: '/var/lib/sluice' },
  { name: 'run-dir', help: 'runtime directory holding agent.sock', default: '/run/sluice' },
  { name: 'bpffs', help: 'directory on a bpf filesystem for pinned maps', default: '/sys/fs/bpf/sluice' },
  { name: 'max-endpoints', help: 'size of the endpoint map', default: '4096' },
  { name: 'max-policy-entries', help: 'size of the policy map (allow entries of all endpoints)', default: '262144' },
  { name: 'log-level', help: 'fatal, error, warn, info, debug or trace', default: 'info' },
  { name: 'help', short: 'h', help: 'show this help', boolean: true },
];
