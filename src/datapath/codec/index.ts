// Every struct shared with the eBPF side, with the C name of its mirror in
// bpf/shared/. The layout test walks this list, so a new codec is checked as
// soon as it is listed here.
import * as conntrack from './conntrack.js';
import * as dns from './dns.js';
import * as endpoint from './endpoint.js';
import * as flowEvent from './flow-event.js';
import * as frag from './frag.js';
import * as fqdn from './fqdn.js';
import * as ipcache from './ipcache.js';
import * as lb from './lb.js';
import * as local from './local.js';
import * as metrics from './metrics.js';
import * as policy from './policy.js';
import * as routed from './routed.js';

export interface StructLayout {
  cName: string;
  header: string;
  size: number;
  offsets: Readonly<Record<string, number>>;
}

export const SHARED_STRUCTS: readonly StructLayout[] = [
  { cName: 'sluice_endpoint_key', header: 'endpoint.h', size: endpoint.KEY_SIZE, offsets: endpoint.KEY_OFFSETS },
  { cName: 'sluice_endpoint', header: 'endpoint.h', size: endpoint.SIZE, offsets: endpoint.OFFSETS },
  { cName: 'sluice_metrics_value', header: 'metrics.h', size: metrics.SIZE, offsets: metrics.OFFSETS },
  { cName: 'sluice_flow_event', header: 'flow_event.h', size: flowEvent.SIZE, offsets: flowEvent.OFFSETS },
  { cName: 'sluice_ipcache_key', header: 'ipcache.h', size: ipcache.KEY_SIZE, offsets: ipcache.KEY_OFFSETS },
  { cName: 'sluice_identity_value', header: 'ipcache.h', size: ipcache.VALUE_SIZE, offsets: ipcache.VALUE_OFFSETS },
  { cName: 'sluice_cidr_key', header: 'ipcache.h', size: ipcache.CIDR_KEY_SIZE, offsets: ipcache.CIDR_KEY_OFFSETS },
  { cName: 'sluice_policy_key', header: 'policy.h', size: policy.KEY_SIZE, offsets: policy.KEY_OFFSETS },
  { cName: 'sluice_policy_value', header: 'policy.h', size: policy.SIZE, offsets: policy.OFFSETS },
  { cName: 'sluice_ct_key', header: 'conntrack.h', size: conntrack.KEY_SIZE, offsets: conntrack.KEY_OFFSETS },
  { cName: 'sluice_ct_value', header: 'conntrack.h', size: conntrack.SIZE, offsets: conntrack.OFFSETS },
  { cName: 'sluice_fqdn_key', header: 'fqdn.h', size: fqdn.KEY_SIZE, offsets: fqdn.KEY_OFFSETS },
  { cName: 'sluice_fqdn_value', header: 'fqdn.h', size: fqdn.SIZE, offsets: fqdn.OFFSETS },
  { cName: 'sluice_fqdn_rules', header: 'fqdn.h', size: fqdn.RULES_SIZE, offsets: fqdn.RULES_OFFSETS },
  { cName: 'sluice_dns_nat_key', header: 'dns.h', size: dns.NAT_KEY_SIZE, offsets: dns.NAT_KEY_OFFSETS },
  { cName: 'sluice_dns_nat_value', header: 'dns.h', size: dns.NAT_SIZE, offsets: dns.NAT_OFFSETS },
  { cName: 'sluice_config', header: 'dns.h', size: dns.CONFIG_SIZE, offsets: dns.CONFIG_OFFSETS },
  { cName: 'sluice_dns_budget', header: 'dns.h', size: dns.BUDGET_SIZE, offsets: dns.BUDGET_OFFSETS },
  { cName: 'sluice_frag_key', header: 'frag.h', size: frag.KEY_SIZE, offsets: frag.KEY_OFFSETS },
  { cName: 'sluice_frag_value', header: 'frag.h', size: frag.SIZE, offsets: frag.OFFSETS },
  { cName: 'sluice_lb_svc_key', header: 'lb.h', size: lb.SVC_KEY_SIZE, offsets: lb.SVC_KEY_OFFSETS },
  { cName: 'sluice_lb_svc', header: 'lb.h', size: lb.SVC_SIZE, offsets: lb.SVC_OFFSETS },
  { cName: 'sluice_lb_be_key', header: 'lb.h', size: lb.BE_KEY_SIZE, offsets: lb.BE_KEY_OFFSETS },
  { cName: 'sluice_lb_be', header: 'lb.h', size: lb.BE_SIZE, offsets: lb.BE_OFFSETS },
  { cName: 'sluice_lb_sock_key', header: 'lb.h', size: lb.SOCK_KEY_SIZE, offsets: lb.SOCK_KEY_OFFSETS },
  { cName: 'sluice_lb_sock', header: 'lb.h', size: lb.SOCK_SIZE, offsets: lb.SOCK_OFFSETS },
  { cName: 'sluice_local_ep', header: 'local.h', size: local.SIZE, offsets: local.OFFSETS },
  { cName: 'sluice_lb_flow_key', header: 'lb.h', size: lb.FLOW_KEY_SIZE, offsets: lb.FLOW_KEY_OFFSETS },
  { cName: 'sluice_nh_key', header: 'routed.h', size: routed.KEY_SIZE, offsets: routed.KEY_OFFSETS },
  { cName: 'sluice_nh', header: 'routed.h', size: routed.SIZE, offsets: routed.OFFSETS },
];

export { conntrack, dns, endpoint, flowEvent, frag, fqdn, ipcache, lb, local, metrics, policy, routed };
