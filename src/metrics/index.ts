// Metrics and operator observability of the agent: the Prometheus registry
// (/metrics), the map fill levels it shares with `sluice status`, and the
// agent's recent error log lines.
export { AgentMetrics } from './agent-metrics.js';
export type { AgentInfo, DatapathCounter, FqdnNumbers, MetricSources, PolicySync } from './agent-metrics.js';
export { RecentErrors } from './recent-errors.js';
export type { LogDestination, RecentError } from './recent-errors.js';
