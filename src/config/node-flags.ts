// The Node.js flags the `sluice` bundle is meant to run with, read from its
// own shebang (`#!/usr/bin/env -S node FLAGS`, written by the Makefile's
// AGENT_NODE_FLAGS). Whoever starts the bundle with `node <bundle>` instead
// of executing it (the demo, tests, benches) passes the same flags, so the
// agent runs the same way everywhere. The young generation is capped there:
// V8 reads the flag only at start-up (docs/benchmarks.md, memory).
import { openSync, readSync, closeSync } from 'node:fs';

const SHEBANG = /^#!\/usr\/bin\/env -S node((?: --[a-z0-9-]+(?:=[^\s]+)?)*)\s*$/;

/** The node flags in `script`'s shebang; none if it has no `env -S node` line. */
export function nodeFlagsOf(script: string): string[] {
  const buf = Buffer.alloc(256);
  const fd = openSync(script, 'r');
  let n: number;
  try {
    n = readSync(fd, buf, 0, buf.length, 0);
  } finally {
    closeSync(fd);
  }
  const first = buf.subarray(0, n).toString('utf8').split('\n')[0] ?? '';
  const m = SHEBANG.exec(first);
  return m ? m[1]!.trim().split(/\s+/).filter(Boolean) : [];
}
