#!/usr/bin/env node
// Runs the upstream Kubernetes e2e suite against Sluice (test/k8s/e2e-upstream.ts):
// bundles that file with esbuild (as cli.mjs does for cluster-cli.ts) into a
// temp file and runs its main() with node, passing the arguments and
// forwarding SIGINT/SIGTERM/SIGHUP, so the cluster stops cleanly.
//   node test/k8s/e2e-upstream.mjs [run|list] [options]     (--help lists them)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const out = mkdtempSync(join(tmpdir(), 'slk8s-e2e-'));
const bundle = join(out, 'e2e-upstream.mjs');
const cleanup = () => rmSync(out, { recursive: true, force: true });
try {
  await build({
    stdin: {
      contents: "import { main } from './e2e-upstream.ts';\n" +
        'main(process.argv.slice(2)).then((code) => process.exit(code), (err) => { console.error(err instanceof Error ? err.message : err); process.exit(2); });\n',
      resolveDir: here,
      sourcefile: 'e2e-upstream-main.ts',
      loader: 'ts',
    },
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    logLevel: 'warning',
    outfile: bundle,
    // import.meta.dirname must still be test/k8s (e2e-upstream.ts finds the repo from it), not the temp dir.
    define: { 'import.meta.dirname': JSON.stringify(here) },
    // yaml and friends are bundled in; a CommonJS dependency's require() needs this shim in ESM.
    banner: { js: 'import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);' },
  });
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
