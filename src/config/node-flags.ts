// The Node.js flags and environment the `sluice` bundle is meant to run
// with, read from its own shebang (`#!/usr/bin/env -S [NAME=value…] node
// FLAGS`, written by the Makefile's AGENT_NODE_ENV and AGENT_NODE_FLAGS).
// Whoever starts the bundle with `node <bundle>` instead of executing it (the
// demo, tests, benches, the image's entrypoint) passes the same, so the agent
// runs the same way everywhere. The young generation is capped there (V8
// reads the flag only at start-up) and so are glibc's malloc arenas
// (MALLOC_ARENA_MAX: read when the process starts, before node's own threads
// make theirs): docs/benchmarks.md, memory.
import { openSync, readSync, closeSync } from 'node:fs';

const SHEBANG = /^#!\/usr\/bin\/env -S((?: [A-Z_][A-Z0-9_]*=[^\s]*)*) node((?: --[a-z0-9-]+(?:=[^\s]+)?)*)\s*$/;

function shebangOf(script: string): RegExpExecArray | null {
  const buf = Buffer.alloc(256);
  const fd = openSync(script, 'r');
  let n: number;
  try {
    n = readSync(fd, buf, 0, buf.length, 0);
  } finally {
    closeSync(fd);
  }
  return SHEBANG.exec(buf.subarray(0, n).toString('utf8').split('\n')[0] ?? '');
}

/** The node flags in `script`'s shebang; none if it has no `env -S … node` line. */
export function nodeFlagsOf(script: string): string[] {
  const m = shebangOf(script);
  return m ? m[2]!.trim().split(/\s+/).filter(Boolean) : [];
}

/** The environment `script`'s shebang sets (`env -S NAME=value … node`); empty if none. */
export function nodeEnvOf(script: string): Record<string, string> {
  const m = shebangOf(script);
  const env: Record<string, string> = {};
  for (const pair of m ? m[1]!.trim().split(/\s+/).filter(Boolean) : []) {
    const at = pair.indexOf('=');
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}
