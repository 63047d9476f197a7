#!/usr/bin/env node
// Runs test/k8s/cluster-cli.ts: bundles it with esbuild (as bench/run.mjs
// does for benchmarks) into a temp file and runs that with node, passing the
// arguments and forwarding SIGINT/SIGTERM, so the cluster stops cleanly.
//   node test/k8s/cli.mjs up|down|status [options]
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const out = mkdtempSync(join(tmpdir(), 'slk8s-cli-'));
const bundle = join(out, 'cluster-cli.mjs');
const cleanup = () => rmSync(out, { recursive: true, force: true });
try {
  execFileSync(join(root, 'node_modules/.bin/esbuild'), [join(here, 'cluster-cli.ts'), '--bundle', '--platform=node', '--target=node20', '--format=esm', '--log-level=warning', `--outfile=${bundle}`,
    // yaml and friends are bundled in; a CommonJS dependency's require() needs this shim in ESM.
    '--banner:js=import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);'], { stdio: 'inherit' });
} catch {
  cleanup();
  process.exit(1);
}
const child = spawn(process.execPath, [bundle, ...process.argv.slice(2)], { stdio: 'inherit', cwd: root });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => {
  cleanup();
  process.exit(code ?? (signal ? 128 : 1));
});
