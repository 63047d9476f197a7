// Runs a TypeScript entry of test/k8s under plain node: bundles it with
// esbuild (as bench/run.mjs does for benchmarks) into a temp file and runs
// that with node, passing the arguments and forwarding SIGINT/SIGTERM/SIGHUP,
// so a cluster it brings up stops cleanly. Used by cli.mjs and e2e-upstream.mjs.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

/**
 * `source`: the module's text (TypeScript, resolved from test/k8s); `name`: for the temp files;
 * `keepDirname`: import.meta.dirname stays test/k8s (for an entry that finds the repo from it), not the temp dir.
 */
export async function runBundled(name, source, { keepDirname = false } = {}) {
  const out = mkdtempSync(join(tmpdir(), `slk8s-${name}-`));
  const bundle = join(out, `${name}.mjs`);
  const cleanup = () => rmSync(out, { recursive: true, force: true });
  try {
    await build({
      stdin: { contents: source, resolveDir: here, sourcefile: `${name}-main.ts`, loader: 'ts' },
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'esm',
      logLevel: 'warning',
      outfile: bundle,
      ...(keepDirname ? { define: { 'import.meta.dirname': JSON.stringify(here) } } : {}),
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
}
