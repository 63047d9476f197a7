// Every struct shared with the eBPF side, with the C name of its mirror in
// bpf/shared/. The layout test walks this list, so a new codec is checked as
// soon as it is listed here.
import * as endpoint from './endpoint.js';
import * as flowEvent from './flow-event.js';
import * as metrics from './metrics.js';

export interface StructLayout {
  cName: string;
  header: string;
  size: number;
  offsets: Readonly<Record<string, number>>;
}

export const SHARED_STRUCTS: readonly StructLayout[] = [
  { cName: 'sluice_endpoint_key', header: 'endpoint.h', size: endpoint.KEY_SIZE, offsets: endpoint.KEY_OFFSETS },
  { cName: 'sluice_endpoint', header: 'endpoint.h', size: endpoint.SIZE, offsets: endpoint.OFFSETS },
  { cName: 'sluice_metrics_key', header: 'metrics.h', size: metrics.KEY_SIZE, offsets: metrics.KEY_OFFSETS },
  { cName: 'sluice_metrics_value', header: 'metrics.h', size: metrics.SIZE, offsets: metrics.OFFSETS },
  { cName: 'sluice_flow_event', header: 'flow_event.h', size: flowEvent.SIZE, offsets: flowEvent.OFFSETS },
];

export { endpoint, flowEvent, metrics };
