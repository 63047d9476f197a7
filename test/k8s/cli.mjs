#!/usr/bin/env node
// Runs test/k8s/cluster-cli.ts under plain node (run-bundled.mjs).
//   node test/k8s/cli.mjs up|down|status [options]
import { runBundled } from './run-bundled.mjs';

await runBundled('cli', "import './cluster-cli.ts';\n");
