// `sluice explain`'s offline evaluator against the NetworkPolicy truth table:
// every case of test/netpol/cases.ts (the cases the real datapath is held to
// in test/netpol/truth-table.test.ts) is written as a manifest directory —
// namespaces x, y, z, pods a, b, c with the cluster's labels, named ports and
// an address per family in status.podIPs — and every cell of every probe the
// case asks for is explained through the offline loader and compared with
// the independent model (test/netpol/model.ts): the verdict, and each
// direction (not isolated, allowed by a rule, denied). No root, no agent.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { explain, ExplainCode, loadWorld, type Explanation, type World as ExplainWorld } from '../../src/explain/index.js';
import { coveringPrefix, NAMESPACES, POD_NAMES, podPorts } from '../helpers/cluster.js';
import { CASES, DEFAULT_PROBES, type CaseContext, type DocSource, type NetpolCase, type PodKey } from '../netpol/cases.js';
import { parsePolicy, verdict, type Family, type Labels, type ModelPod, type Policy, type Probe, type World } from '../netpol/model.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const PODS = NAMESPACES.flatMap((ns) => POD_NAMES.map((name) => `${ns}/${name}` as PodKey));
/** Addresses as a CNI would hand them out: one per family, distinct, inside one /24 and one /64. */
const IPS = new Map(PODS.map((key, i) => [key, { 4: `10.66.0.${10 + i}`, 6: `fd00:66::${(10 + i).toString(16)}` } as Record<Family, string>]));

const context: CaseContext = {
  ip: (pod, family = 4) => IPS.get(pod)![family],
  host: (pod, family = 4) => `${IPS.get(pod)![family]}/${family === 4 ? 32 : 128}`,
  podsPrefix: (family = 4) => coveringPrefix(PODS.map((p) => IPS.get(p)![family])),
};

function render(src: DocSource): string {
  const doc = typeof src === 'function' ? src(context) : src;
  return typeof doc === 'string' ? doc : stringify(doc);
}

/** The case's world as it stands: labels as last set, in the model's terms. */
class Scene {
  readonly podLabels = new Map<PodKey, Labels>(PODS.map((p) => [p, { pod: p.split('/')[1]! }]));
  readonly nsLabels = new Map<string, Labels>(NAMESPACES.map((ns) => [ns, { ns }]));
  readonly files = new Map<string, string>();

  model(): World {
    return {
      namespaces: NAMESPACES.map((name) => ({ name, labels: { ...this.nsLabels.get(name), 'kubernetes.io/metadata.name': name } })),
      pods: PODS.map((key): ModelPod => {
        const [namespace, name] = key.split('/') as [string, string];
        return { namespace, name, labels: this.podLabels.get(key)!, ports: podPorts(name), ips: Object.values(IPS.get(key)!) };
      }),
    };
  }

  /** The manifest directory: namespaces, pods, and the policy files (plus `extra`, e.g. an invalid one). */
  write(extra: Record<string, string> = {}): string {
    const dir = mkdtempSync(join(tmpdir(), 'slt-explain-'));
    dirs.push(dir);
    for (const ns of NAMESPACES) writeFileSync(join(dir, `ns-${ns}.yaml`), stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { ...this.nsLabels.get(ns) } } }));
    for (const key of PODS) {
      const [namespace, name] = key.split('/') as [string, string];
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace, labels: { ...this.podLabels.get(key) } },
        spec: { containers: [{ name: 'prober', image: 'sluice.test/prober', ports: podPorts(name).map((p) => ({ ...p })) }] },
        status: { podIPs: Object.values(IPS.get(key)!).map((ip) => ({ ip })) },
      };
      writeFileSync(join(dir, `pod-${namespace}-${name}.yaml`), stringify(pod));
    }
    for (const [file, text] of [...this.files, ...Object.entries(extra)]) writeFileSync(join(dir, file), text);
    return dir;
  }
}

function probesOf(c: Pick<NetpolCase, 'probes' | 'families'>): Probe[] {
  return (c.families ?? [4]).flatMap((family: Family) => (c.probes ?? DEFAULT_PROBES).map((p) => ({ ...p, family })));
}

/** The model's word on one direction, as the explain chain should show it. */
function stepOutcome(e: Explanation, direction: 'egress' | 'ingress'): 'not-isolated' | 'allowed' | 'denied' {
  const s = e.paths[0]!.steps.find((x) => x.direction === direction)!;
  if (s.outcome === 'deny') return 'denied';
  return s.isolatedBy.length ? 'allowed' : 'not-isolated';
}

/** Every cell of every probe: "from -> to probe" for each disagreement with the model. */
function disagreements(world: ExplainWorld, model: World, policies: readonly Policy[], probes: readonly Probe[]): string[] {
  const wrong: string[] = [];
  for (const probe of probes) {
    for (const [i, from] of model.pods.entries()) {
      for (const [j, to] of model.pods.entries()) {
        const fromKey = `${from.namespace}/${from.name}` as PodKey;
        const toKey = `${to.namespace}/${to.name}` as PodKey;
        const e = explain(world, { from: fromKey, to: IPS.get(toKey)![probe.family], port: `${probe.port}/${probe.protocol}` });
        const cell = `${fromKey} -> ${toKey} ${probe.protocol}/${probe.port} IPv${probe.family}`;
        // A pod to itself never reaches the datapath (the live harness expects it to connect).
        if (i === j) {
          if (e.verdict !== 'allow') wrong.push(`${cell}: loopback explained as ${e.verdict}`);
          continue;
        }
        const m = verdict(model, policies, from, to, probe);
        const got = { allowed: e.verdict === 'allow', egress: stepOutcome(e, 'egress'), ingress: stepOutcome(e, 'ingress') };
        if (JSON.stringify(got) !== JSON.stringify(m)) wrong.push(`${cell}: explain ${JSON.stringify(got)}, model ${JSON.stringify(m)}; ${e.reason}`);
      }
    }
  }
  return wrong;
}

describe('explain (offline) agrees with the NetworkPolicy model on every truth-table case', () => {
  for (const c of CASES) {
    it(`${c.name}: ${c.covers}`, () => {
      const scene = new Scene();
      const policies = new Map<string, Policy>();
      let cells = 0;
      for (const [i, step] of c.steps.entries()) {
        const what = `step ${i + 1} (${step.what})`;
        for (const [key, labels] of Object.entries(step.podLabels ?? {})) if (labels) scene.podLabels.set(key as PodKey, labels);
        for (const [ns, labels] of Object.entries(step.namespaceLabels ?? {})) if (labels) scene.nsLabels.set(ns, labels);
        for (const [key, src] of Object.entries(step.policies ?? {})) {
          const file = `np-${c.name}-${key}.yaml`;
          if (src === null) {
            scene.files.delete(file);
            policies.delete(file);
            continue;
          }
          const text = render(src);
          scene.files.set(file, text);
          policies.set(file, parsePolicy(parse(text)));
        }
        // Offline, a manifest that does not parse fails the run, naming its file (the agent would reject it).
        for (const [key, src] of Object.entries(step.invalid ?? {})) {
          const file = `np-${c.name}-${key}.yaml`;
          expect(() => loadWorld(scene.write({ [file]: render(src) })), what).toThrow(expect.objectContaining({ code: ExplainCode.BAD_MANIFESTS, message: expect.stringContaining(file) }));
        }
        const probes = probesOf(c);
        const wrong = disagreements(loadWorld(scene.write()), scene.model(), [...policies.values()], probes);
        expect(wrong, `${c.name}, ${what}`).toEqual([]);
        cells += probes.length * PODS.length * PODS.length;
      }
      expect(cells).toBeGreaterThan(0);
    });
  }
});
