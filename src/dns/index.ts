// The DNS side of FQDN policy: the transparent proxy, what it learns (cache,
// derived allows, journal) and the wire format helpers. The agent wires it
// to the datapath (src/agent/fqdn.ts).
export { FqdnAllows, type AllowSink, type FqdnRuleSpec } from './allows.js';
export { FqdnCache, refreshSlackMs, type CacheOptions, type NameEntry } from './cache.js';
export { monoMsToNs, monoNowMs, monoNsToMs } from './clock.js';
export { DNS_PORT, PROXY_PORT, PROXY_V4, PROXY_V6 } from './constants.js';
export { FqdnJournal } from './journal.js';
export type { Learned } from './message.js';
export { DEFAULT_LIMITS, DnsProxy, type ClientPolicy, type PodDnsStats, type ProxyDeps, type ProxyLimits, type ProxyObserver, type ProxyStats, type AnswerReason, type UdpSockets } from './proxy.js';
