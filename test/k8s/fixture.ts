// One cluster per test file, taken under the machine's cluster lock
// (lock.ts), brought up by `start` in beforeAll and stopped in afterAll (its
// logs kept when a test failed). A bring-up failure (missing binaries: "run
// test/k8s/build.sh") fails every test with its error instead of skipping.
import { afterAll, beforeAll, onTestFailed } from 'vitest';
import type { Cluster } from './cluster.js';
import { lockCluster } from './lock.js';

export interface ClusterFixture {
  /** The cluster; throws the bring-up error if there is none. */
  get(): Cluster;
  /** Call first in a test: on failure the logs are kept (and `onFail` runs). */
  noteFailure(onFail?: (c: Cluster) => void | Promise<void>): void;
  /** Whether a test has failed so far. */
  failed(): boolean;
}

export function clusterFixture(start: () => Promise<Cluster>, after?: (c: Cluster) => Promise<void>): ClusterFixture {
  let cluster: Cluster | undefined;
  let startError: Error | undefined;
  let failed = false;
  let unlock: (() => void) | undefined;
  beforeAll(async () => {
    unlock = await lockCluster();
    try {
      cluster = await start();
      if (after) await after(cluster);
    } catch (err) {
      startError = err as Error;
    }
  }, 20 * 60_000);
  afterAll(() => {
    try {
      cluster?.stop({ keepLogs: failed });
    } finally {
      unlock?.();
    }
  }, 120_000);
  return {
    get: () => {
      if (!cluster) throw startError ?? new Error('no cluster');
      return cluster;
    },
    failed: () => failed,
    noteFailure: (onFail) =>
      onTestFailed(async () => {
        failed = true;
        cluster?.keepLogs();
        if (cluster) await onFail?.(cluster);
      }),
  };
}
