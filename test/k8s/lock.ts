// One cluster per machine (its names and addresses are fixed): test files
// that bring one up take this lock first, so vitest may run them in
// parallel with everything else but one after the other among themselves.
// A lock whose holder died (its pid gone, or another process's now) is taken over.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { aliveAs, startTime } from './ledger.js';

const DIR = '/run/sluice-k8s';
const LOCK = `${DIR}/cluster.lock`;

/** Waits (bounded) for the cluster lock; resolves with the release function. */
export async function lockCluster(timeoutMs = 15 * 60_000): Promise<() => void> {
  mkdirSync(DIR, { recursive: true });
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(`${LOCK}/pid`, `${process.pid} ${startTime(process.pid)}`);
      return () => rmSync(LOCK, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder = 0;
    let start = '';
    try {
      const [pid = '', since = ''] = readFileSync(`${LOCK}/pid`, 'utf8').split(' ');
      holder = Number(pid);
      start = since;
    } catch {
      // being written, or gone
    }
    if (holder && start && !aliveAs(holder, start)) rmSync(LOCK, { recursive: true, force: true });
    if (Date.now() > until) throw new Error(`the k8s test cluster is still held by pid ${holder} after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
