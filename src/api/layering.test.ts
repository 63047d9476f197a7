// The CLI and the agent share a contract (src/api) and flag parsing
// (src/config), never each other's modules: this scans the imports of every
// module under src/ (static, `export … from` and dynamic `import()`) and
// fails on an edge or a folder-level cycle between them.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const IMPORT_RE = /(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm;

function modules(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return modules(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [path] : [];
  });
}

/** "cli" for src/cli/run.ts, "" for src/main.ts (the binary's entry, above every folder). */
function folderOf(path: string): string {
  const rel = relative(SRC, path).split(sep);
  return rel.length > 1 ? rel[0]! : '';
}

/** Folder → the folders its modules import, each with one file and specifier that does. */
function folderGraph(): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>();
  for (const file of modules(SRC)) {
    const from = folderOf(file);
    if (!from) continue;
    const edges = graph.get(from) ?? new Map<string, string>();
    graph.set(from, edges);
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT_RE)) {
      const spec = m[1]!;
      if (!spec.startsWith('.')) continue; // packages and node: builtins
      const to = folderOf(resolve(dirname(file), spec));
      if (to && to !== from && !edges.has(to)) edges.set(to, `${relative(SRC, file)} imports ${spec}`);
    }
  }
  return graph;
}

/** A path of folders from `from` to `to` (both included), or undefined. */
function pathBetween(graph: Map<string, Map<string, string>>, from: string, to: string): string[] | undefined {
  const seen = new Set<string>([from]);
  const queue: string[][] = [[from]];
  while (queue.length) {
    const path = queue.shift()!;
    for (const next of graph.get(path.at(-1)!)?.keys() ?? []) {
      if (next === to) return [...path, next];
      if (!seen.has(next)) {
        seen.add(next);
        queue.push([...path, next]);
      }
    }
  }
  return undefined;
}

describe('imports between src/cli and src/agent', () => {
  const graph = folderGraph();

  it('finds the folders and their imports (the scan works)', () => {
    expect(graph.get('cli')?.has('api')).toBe(true);
    expect(graph.get('agent')?.has('api')).toBe(true);
    expect(graph.get('agent')?.has('config')).toBe(true);
  });

  it('has no import from src/cli into src/agent or back, directly or through other folders', () => {
    expect(graph.get('cli')?.get('agent')).toBeUndefined();
    expect(graph.get('agent')?.get('cli')).toBeUndefined();
    expect(pathBetween(graph, 'cli', 'agent')).toBeUndefined();
    expect(pathBetween(graph, 'agent', 'cli')).toBeUndefined();
  });

  it('keeps the shared folders below both: src/api and src/config reach neither', () => {
    for (const shared of ['api', 'config']) {
      for (const side of ['cli', 'agent']) expect(pathBetween(graph, shared, side), `${shared} → ${side}`).toBeUndefined();
    }
  });

  it('has no folder-level cycle through cli, agent, api or config', () => {
    for (const folder of ['cli', 'agent', 'api', 'config']) {
      const cycle = [...(graph.get(folder)?.keys() ?? [])].map((next) => pathBetween(graph, next, folder)).find(Boolean);
      expect(cycle && [folder, ...cycle].join(' → '), `first edge: ${graph.get(folder)?.get(cycle?.[0] ?? '')}`).toBeUndefined();
    }
  });
});
