// The metric definitions and their collectors over fakes: the datapath's
// counters from the in-memory addon's sluice_metrics_v2, the DNS proxy's
// hooks, syncs, CNI operations, flow events and map fill levels. Values are
// read back with prom-client's own JSON view of the registry.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { fakeDatapath } from '../../test/fakes/bpf-addon.js';
import * as metricsCodec from '../datapath/codec/metrics.js';
import { DropReason, MAP_METRICS, type MapFill } from '../datapath/index.js';
import { FLOW_CHANNEL, type Flow } from '../observe/index.js';
import { AgentMetrics, type FqdnNumbers, type MetricSources } from './index.js';

const log = pino({ level: 'silent' });
const started: AgentMetrics[] = [];
afterEach(() => {
  for (const m of started.splice(0)) m.stop();
});

const PROXY: FqdnNumbers['proxy'] = {
  queries: 0, forwarded: 0, answered: 0, refused: 0, servfail: 0, malformed: 0, spoofed: 0, unattributed: 0, upstreamTimeouts: 0,
  learnedAnswers: 0, truncated: 0, errors: 0, overInflight: 0, tcpOverLimit: 0, fromPod: 0, fromPodFailed: 0, sendFailed: 0, unchanged: 0, releasedBeforeLearning: 0, refreshFailed: 0, rateLimited: 0,
};

async function metrics(sources: Partial<MetricSources> = {}): Promise<AgentMetrics> {
  const m = await AgentMetrics.load(
    { version: '1.2.3', mode: 'standalone' },
    { datapath: () => [], fqdn: () => ({ names: 0, ips: 0, entries: 0, proxy: PROXY }), endpoints: () => 0, maps: () => Promise.resolve([]), ...sources },
    log,
  );
  started.push(m);
  return m;
}

/** Every sample of `name` (histogram samples under their _bucket/_count/_sum names) with labels and value. */
async function samples(m: AgentMetrics, name: string): Promise<Array<{ name: string; labels: Record<string, string | number>; value: number }>> {
  const all = await m.registry.getMetricsAsJSON();
  const family = all.find((f) => f.name === name);
  if (!family) throw new Error(`no metric ${name}`);
  return family.values.map((v) => ({ name: (v as { metricName?: string }).metricName ?? name, labels: v.labels as Record<string, string | number>, value: v.value }));
}

async function value(m: AgentMetrics, name: string, labels: Record<string, string | number> = {}, sample = name): Promise<number | undefined> {
  const want = Object.entries(labels);
  return (await samples(m, name)).find((s) => s.name === sample && want.every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === want.length)?.value;
}

describe('datapath counters', () => {
  it('come from sluice_metrics_v2 summed over CPUs at each scrape, with verdict, reason and direction', async () => {
    const { addon, dp } = fakeDatapath();
    const map = addon.map(MAP_METRICS).entries;
    const put = (key: metricsCodec.MetricsKey, perCpu: Array<[number, number]>) =>
      map.set(metricsCodec.encodeKey(key).toString('hex'), Buffer.concat(perCpu.map(([p, b]) => metricsCodec.encode({ packets: BigInt(p), bytes: BigInt(b) }))));
    put({ reason: 0, direction: metricsCodec.DIR_FROM_POD }, [[5, 500], [5, 500]]);
    put({ reason: DropReason.POLICY_DENIED, direction: metricsCodec.DIR_TO_POD }, [[1, 60], [2, 120]]);
    put({ reason: DropReason.POLICY_DENIED, direction: metricsCodec.DIR_FROM_POD, audit: 1 }, [[4, 240], [0, 0]]);
    const m = await metrics({ datapath: () => dp.metrics() });
    expect(await value(m, 'sluice_datapath_packets_total', { verdict: 'forwarded', reason: 'forwarded', direction: 'egress' })).toBe(10);
    expect(await value(m, 'sluice_datapath_bytes_total', { verdict: 'forwarded', reason: 'forwarded', direction: 'egress' })).toBe(1000);
    expect(await value(m, 'sluice_datapath_packets_total', { verdict: 'dropped', reason: 'policy-denied', direction: 'ingress' })).toBe(3);
    expect(await value(m, 'sluice_datapath_packets_total', { verdict: 'audit', reason: 'policy-denied', direction: 'egress' })).toBe(4);
    // The map moved: the next scrape reads it again (not counted twice).
    put({ reason: DropReason.POLICY_DENIED, direction: metricsCodec.DIR_TO_POD }, [[1, 60], [9, 540]]);
    expect(await value(m, 'sluice_datapath_packets_total', { verdict: 'dropped', reason: 'policy-denied', direction: 'ingress' })).toBe(10);
    expect(await value(m, 'sluice_datapath_bytes_total', { verdict: 'dropped', reason: 'policy-denied', direction: 'ingress' })).toBe(600);
  });

  it('a source that fails keeps the last values and is counted; one not there yet is skipped', async () => {
    let fail = false;
    let rows: Array<{ reason: number; direction: number; packets: bigint; bytes: bigint }> | undefined;
    const m = await metrics({
      datapath: () => {
        if (fail) throw new Error('EBADF');
        return rows;
      },
    });
    expect(await samples(m, 'sluice_datapath_packets_total')).toEqual([]);
    rows = [{ reason: DropReason.NO_FQDN_ALLOW, direction: 0, packets: 7n, bytes: 700n }];
    expect(await value(m, 'sluice_datapath_packets_total', { verdict: 'dropped', reason: 'no-fqdn-allow', direction: 'egress' })).toBe(7);
    fail = true;
    expect(await value(m, 'sluice_datapath_packets_total', { verdict: 'dropped', reason: 'no-fqdn-allow', direction: 'egress' })).toBe(7);
    // Each read is a scrape: the one above and this one failed.
    expect(await value(m, 'sluice_metrics_collect_errors_total', { collector: 'datapath' })).toBe(2);
  });
});

describe('DNS and FQDN', () => {
  it('the proxy hooks count queries by protocol, answers by result and reason, and their latency', async () => {
    const m = await metrics();
    m.dns.query('udp');
    m.dns.query('udp');
    m.dns.query('tcp');
    m.dns.answered('forwarded', 'upstream', 0.0008);
    m.dns.answered('refused', 'untrusted-resolver', 0.00004);
    m.dns.answered('servfail', 'learn-failed', 0.3);
    expect(await value(m, 'sluice_dns_queries_total', { protocol: 'udp' })).toBe(2);
    expect(await value(m, 'sluice_dns_queries_total', { protocol: 'tcp' })).toBe(1);
    expect(await value(m, 'sluice_dns_responses_total', { result: 'forwarded', reason: 'upstream' })).toBe(1);
    expect(await value(m, 'sluice_dns_responses_total', { result: 'refused', reason: 'untrusted-resolver' })).toBe(1);
    const h = 'sluice_dns_proxy_latency_seconds';
    expect(await value(m, h, { result: 'forwarded' }, `${h}_count`)).toBe(1);
    expect(await value(m, h, { result: 'forwarded', le: 0.001 }, `${h}_bucket`)).toBe(1);
    expect(await value(m, h, { result: 'forwarded', le: 0.0005 }, `${h}_bucket`)).toBe(0);
    // 50 µs is the first bucket: a refusal lands in it.
    expect(await value(m, h, { result: 'refused', le: 0.00005 }, `${h}_bucket`)).toBe(1);
    expect(await value(m, h, { result: 'servfail' }, `${h}_sum`)).toBeCloseTo(0.3);
  });

  it('the FQDN state and the proxy\'s drop counters are read at scrape time', async () => {
    const m = await metrics({ fqdn: () => ({ names: 3, ips: 5, entries: 8, proxy: { ...PROXY, learnedAnswers: 4, unchanged: 3, releasedBeforeLearning: 7, refreshFailed: 1, malformed: 2, spoofed: 1, upstreamTimeouts: 6, rateLimited: 9 } }) });
    expect(await value(m, 'sluice_fqdn_names')).toBe(3);
    expect(await value(m, 'sluice_fqdn_addresses')).toBe(5);
    expect(await value(m, 'sluice_fqdn_datapath_entries')).toBe(8);
    expect(await value(m, 'sluice_fqdn_learned_answers_total')).toBe(4);
    expect(await value(m, 'sluice_dns_unchanged_answers_total')).toBe(3);
    expect(await value(m, 'sluice_dns_released_before_learning_total')).toBe(7);
    expect(await value(m, 'sluice_dns_refresh_failed_total')).toBe(1);
    expect(await value(m, 'sluice_dns_dropped_total', { reason: 'malformed' })).toBe(2);
    expect(await value(m, 'sluice_dns_dropped_total', { reason: 'spoofed' })).toBe(1);
    expect(await value(m, 'sluice_dns_dropped_total', { reason: 'upstream-timeout' })).toBe(6);
    expect(await value(m, 'sluice_dns_dropped_total', { reason: 'rate-limited' })).toBe(9);
    expect(await value(m, 'sluice_dns_dropped_total', { reason: 'over-inflight' })).toBe(0);
  });
});

describe('policy, CNI, flows, endpoints and the agent', () => {
  it('policy syncs: a histogram of their time, the generation, the failures', async () => {
    const m = await metrics();
    m.policySynced({ seconds: 0.004, generation: 1, ok: true });
    m.policySynced({ seconds: 0.02, generation: 1, ok: false });
    m.policySynced({ seconds: 2, generation: 2, ok: true });
    const h = 'sluice_policy_programming_seconds';
    expect(await value(m, h, {}, `${h}_count`)).toBe(3);
    expect(await value(m, h, { le: 0.005 }, `${h}_bucket`)).toBe(1);
    expect(await value(m, 'sluice_policy_generation')).toBe(2);
    expect(await value(m, 'sluice_policy_sync_failures_total')).toBe(1);
  });

  it('CNI operations by command and result; a command no runtime sends is "other", not a new label value', async () => {
    const m = await metrics();
    m.cniOperation('ADD', true, 0.05);
    m.cniOperation('ADD', true, 0.07);
    m.cniOperation('DEL', false, 0.01);
    m.cniOperation('$(rm -rf)', false, 0.001);
    m.cniOperation(undefined, false, 0.001);
    const h = 'sluice_cni_operation_seconds';
    expect(await value(m, h, { command: 'ADD', result: 'success' }, `${h}_count`)).toBe(2);
    expect(await value(m, h, { command: 'DEL', result: 'error' }, `${h}_count`)).toBe(1);
    expect(await value(m, h, { command: 'other', result: 'error' }, `${h}_count`)).toBe(2);
  });

  it('flow events as the flow log publishes them, until stop()', async () => {
    const m = await metrics();
    const flow = (verdict: string) => FLOW_CHANNEL.publish({ verdict } as unknown as Flow);
    flow('allowed');
    flow('dropped');
    flow('dropped');
    flow('audit');
    expect(await value(m, 'sluice_flow_events_total', { verdict: 'dropped' })).toBe(2);
    expect(await value(m, 'sluice_flow_events_total', { verdict: 'audit' })).toBe(1);
    m.stop();
    flow('dropped');
    expect(await value(m, 'sluice_flow_events_total', { verdict: 'dropped' })).toBe(2);
  });

  it('endpoints, the agent\'s version and mode, and the process metrics', async () => {
    const m = await metrics({ endpoints: () => 4 });
    expect(await value(m, 'sluice_endpoints')).toBe(4);
    expect(await value(m, 'sluice_agent_info', { version: '1.2.3', mode: 'standalone' })).toBe(1);
    expect(await value(m, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(m.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await m.render()).toContain('# TYPE sluice_datapath_packets_total counter');
  });
});

describe('map fill levels', () => {
  it('entries and capacity per map, counted at most every 10 s and shared by concurrent asks', async () => {
    let counts = 0;
    let fill: MapFill[] = [{ map: 'ct', entries: 10, capacity: 100 }];
    const m = await metrics({
      maps: () => {
        counts++;
        return Promise.resolve(fill);
      },
    });
    expect(await value(m, 'sluice_map_entries', { map: 'ct' })).toBe(10);
    expect(await value(m, 'sluice_map_capacity', { map: 'ct' })).toBe(100);
    fill = [{ map: 'ct', entries: 20, capacity: 100 }];
    await Promise.all([m.mapFill(), m.mapFill(), value(m, 'sluice_map_entries', { map: 'ct' })]);
    expect(await m.mapFill()).toEqual([{ map: 'ct', entries: 10, capacity: 100 }]);
    expect(counts).toBe(1);
  });

  it('nothing to count yet (no datapath) is no series and no error; a failed count is retried at the next ask', async () => {
    let mode: 'none' | 'fail' | 'ok' = 'none';
    const m = await metrics({
      maps: () => (mode === 'none' ? undefined : mode === 'fail' ? Promise.reject(new Error('EBADF')) : Promise.resolve([{ map: 'policy', entries: 1, capacity: 2 }])),
    });
    expect(m.mapFill()).toBeUndefined();
    expect(await samples(m, 'sluice_map_entries')).toEqual([]);
    expect(await value(m, 'sluice_metrics_collect_errors_total', { collector: 'maps' })).toBeUndefined();
    mode = 'fail';
    await expect(m.mapFill()).rejects.toThrow('EBADF');
    mode = 'ok';
    // One scrape counts and shows both gauges of it.
    const scrape = await m.registry.getMetricsAsJSON();
    const of = (name: string) => scrape.find((f) => f.name === name)?.values.map((v) => [v.labels.map, v.value]);
    expect(of('sluice_map_entries')).toEqual([['policy', 1]]);
    expect(of('sluice_map_capacity')).toEqual([['policy', 2]]);
  });
});
