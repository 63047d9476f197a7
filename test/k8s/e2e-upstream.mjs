#!/usr/bin/env node
// Runs the upstream Kubernetes e2e suite against Sluice (test/k8s/e2e-upstream.ts)
// under plain node (run-bundled.mjs).
//   node test/k8s/e2e-upstream.mjs [run|list|render] [options]     (--help lists them)
import { runBundled } from './run-bundled.mjs';

await runBundled(
  'e2e',
  "import { main } from './e2e-upstream.ts';\n" +
    'main(process.argv.slice(2)).then((code) => process.exit(code), (err) => { console.error(err instanceof Error ? err.message : err); process.exit(2); });\n',
  { keepDirname: true }, // e2e-upstream.ts finds the repo from it
);
