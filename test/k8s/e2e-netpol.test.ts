// A fixed subset of the upstream Kubernetes NetworkPolicy e2e suite
// (e2e.test of v1.31.4, built by test/k8s/build.sh) against Sluice on the
// real two-node cluster: the cluster brought up as sluice.test.ts does (cni
// 'none', build/image/sluice.tar on each node, `kubectl apply -f deploy/`)
// plus CoreDNS, then e2e.test selecting these specs by their exact names
// (test/k8s/e2e-upstream.ts). Each spec must pass. All 45 specs (without SCTP):
// `make e2e-upstream`, results in docs/conformance.md.
//
// The subset: fast specs (~12–25 s each when they pass; a failing spec takes
// 30–240 s) covering ingress by pod, namespace (labels, matchExpressions, the
// immutable kubernetes.io/metadata.name label) and both together, egress
// denial, ports, protocols (UDP, TCP vs UDP), allow-all, a pod relabelled
// under a policy, the API, and egress allowed by ipBlock, except and selectors
// through ClusterIP Services (judged on the backend: docs/datapath.md). Needs root, the binaries of test/k8s/build.sh (with e2e.test)
// and build/image/sluice.tar (`make image`): without them this FAILS.
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { isRoot } from '../helpers/netns.js';
import { startSluiceCluster, runE2E, type E2ERun } from './e2e-upstream.js';
import { clusterFixture } from './fixture.js';

const NP = '[sig-network] Netpol NetworkPolicy between server and client';
const FEATURE = '[Feature:NetworkPolicy]';

/** Exact spec names (e2e.test v1.31.4; `node test/k8s/e2e-upstream.mjs list` prints them all). */
const SUBSET = [
  '[sig-network] Netpol API should support creating NetworkPolicy API operations',
  '[sig-network] Netpol API should support creating NetworkPolicy API with endport field',
  `${NP} should enforce policy to allow ingress traffic from pods in all namespaces ${FEATURE}`,
  `${NP} should deny ingress from pods on other namespaces ${FEATURE}`,
  `${NP} should enforce policy based on PodSelector and NamespaceSelector ${FEATURE}`,
  `${NP} should enforce policy based on PodSelector or NamespaceSelector ${FEATURE}`,
  `${NP} should enforce policy based on NamespaceSelector with MatchExpressions ${FEATURE}`,
  `${NP} should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label ${FEATURE}`,
  `${NP} should deny ingress access to updated pod ${FEATURE}`,
  `${NP} should support allow-all policy ${FEATURE}`,
  `${NP} should enforce policy based on Ports ${FEATURE}`,
  `${NP} should not allow access by TCP when a policy specifies only UDP ${FEATURE}`,
  `${NP} should deny egress from pods based on PodSelector ${FEATURE}`,
  `${NP} should deny egress from all pods in a namespace ${FEATURE}`,
  // Egress allowed to a server the probes reach through its ClusterIP: they pass only because the
  // connection is translated to the backend before policy (failed in the baseline before that).
  `${NP} should allow egress access to server in CIDR block ${FEATURE}`,
  `${NP} should enforce except clause while egress access to server in CIDR block ${FEATURE}`,
  `${NP} should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector ${FEATURE}`,
  `${NP} should support denying of egress traffic on the client side (even if the server explicitly allows this traffic) ${FEATURE}`,
  `[sig-network] Netpol [LinuxOnly] NetworkPolicy between server and client using UDP should enforce policy based on Ports ${FEATURE}`,
];

/** e2e.test's whole run (~15 × 20 s when they pass; a failing spec may take 4 min). */
const RUN_TIMEOUT_MS = 20 * 60_000;

describe.skipIf(!isRoot)(`the upstream NetworkPolicy e2e suite against Sluice: ${SUBSET.length} specs of e2e.test`, () => {
  const fx = clusterFixture(() => startSluiceCluster());
  let run: E2ERun | undefined;
  // e2e.test's report and log (~3 MB) are kept when something failed, else removed.
  afterAll(() => {
    if (run && !fx.failed()) rmSync(run.reportDir, { recursive: true, force: true });
    else if (run) console.log(`e2e.test's report and log kept in ${run.reportDir}`);
  });

  it('e2e.test runs the subset to the end', async () => {
    fx.noteFailure();
    run = await runE2E({ kubeconfig: fx.get().kubeconfig, specs: SUBSET, timeoutMs: RUN_TIMEOUT_MS });
    console.log(`e2e.test: ${(run.durationMs / 1000).toFixed(0)} s, report in ${run.reportDir}`);
    expect(run.timedOut, `e2e.test timed out (${run.logFile})`).toBe(false);
    expect(run.source, `no JUnit report in ${run.reportDir}`).toBe('junit');
    expect(run.results.map((r) => r.name).sort()).toEqual([...SUBSET].sort());
  }, RUN_TIMEOUT_MS + 5 * 60_000);

  it.each(SUBSET)('%s', (name) => {
    fx.noteFailure();
    if (!run) throw new Error('e2e.test did not run (see the first test)');
    const r = run.results.find((x) => x.name === name);
    expect(r?.result, `${r?.message ?? 'not in the report'} (log: ${run.logFile})`).toBe('passed');
  });
});
