#!/usr/bin/env node
// Runs benchmarks: `node bench/run.mjs [name…]` (default: all). Each
// bench/<name>/*.bench.ts is bundled with esbuild and run in a fresh process.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = join(root, 'bench');
const outDir = join(root, 'build', 'bench');
const all = readdirSync(benchDir).filter((d) => d !== 'lib' && statSync(join(benchDir, d)).isDirectory());
const wanted = process.argv.slice(2);
if (wanted.includes('--help')) {
  console.log(`usage: node bench/run.mjs [${all.join('|')}]…`);
  process.exit(0);
}
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; have: ${all.join(', ')}`);
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
let failed = 0;
for (const name of wanted.length ? wanted : all) {
  for (const file of readdirSync(join(benchDir, name)).filter((f) => f.endsWith('.bench.ts'))) {
    const out = join(outDir, `${name}-${file.replace(/\.ts$/, '.mjs')}`);
    execFileSync(join(root, 'node_modules/.bin/esbuild'), [join(benchDir, name, file), '--bundle', '--platform=node', '--format=esm', '--packages=external', '--log-level=warning', `--outfile=${out}`, `--define:import.meta.dirname=${JSON.stringify(join(benchDir, name))}`]);
    const r = spawnSync(process.execPath, [out], { stdio: 'inherit', cwd: root });
    if (r.status !== 0) failed++;
  }
}
process.exit(failed ? 1 : 0);
