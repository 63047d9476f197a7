export { FLOW_CHANNEL, FlowLog } from './flow-log.js';
export type { Flow, FlowLogStats, FlowNames, FlowQuery } from './flow-log.js';
