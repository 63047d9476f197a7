// One contract, two mirrors: every struct in bpf/shared/ must have the same
// size and field offsets as its TypeScript codec — checked against the C
// compiler (all structs) and against the BTF of the compiled eBPF objects
// (every struct the objects carry type information for).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SHARED_STRUCTS } from '../../src/datapath/codec/index.js';
import { DropReason, REASON_FORWARDED } from '../../src/datapath/drop-reasons.js';

const root = join(import.meta.dirname, '../..');
const tmp = mkdtempSync(join(tmpdir(), 'sluice-layout-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function compilerLayouts(): Record<string, { size: number; offsets: Record<string, number> }> {
  const headers = [...new Set(SHARED_STRUCTS.map((s) => s.header))];
  const lines = [
    '#include <stddef.h>',
    '#include <stdio.h>',
    ...headers.map((h) => `#include "${join(root, 'bpf/shared', h)}"`),
    'int main(void) {',
    '  printf("{");',
  ];
  SHARED_STRUCTS.forEach((s, i) => {
    const fields = Object.keys(s.offsets)
      .map((f) => `\\"${f}\\":%zu`)
      .join(',');
    const args = Object.keys(s.offsets)
      .map((f) => `offsetof(struct ${s.cName}, ${f})`)
      .join(', ');
    lines.push(
      `  printf("%s\\"${s.cName}\\":{\\"size\\":%zu,\\"offsets\\":{${fields}}}", "${i ? ',' : ''}", sizeof(struct ${s.cName}), ${args});`,
    );
  });
  lines.push('  printf("}");', '  return 0;', '}');
  const src = join(tmp, 'layout.c');
  writeFileSync(src, lines.join('\n'));
  execFileSync('cc', ['-Wall', '-Werror', '-o', join(tmp, 'layout'), src]);
  return JSON.parse(execFileSync(join(tmp, 'layout'), { encoding: 'utf8' }));
}

interface BtfType {
  kind: string;
  name?: string;
  size?: number;
  members?: Array<{ name: string; bits_offset: number }>;
}

function btfStructs(): Map<string, BtfType> {
  const found = new Map<string, BtfType>();
  const dir = join(root, 'build/bpf');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.o'))) {
    const dump = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', join(dir, file)], { encoding: 'utf8' }));
    for (const t of dump.types as BtfType[]) if (t.kind === 'STRUCT' && t.name?.startsWith('sluice_')) found.set(t.name, t);
  }
  return found;
}

describe('shared struct layouts', () => {
  const fromCompiler = compilerLayouts();
  const fromBtf = btfStructs();

  it('the eBPF objects carry BTF for the map keys and values', () => {
    for (const name of ['sluice_endpoint_key', 'sluice_endpoint', 'sluice_metrics_key', 'sluice_metrics_value']) {
      expect(fromBtf.has(name), name).toBe(true);
    }
  });

  for (const s of SHARED_STRUCTS) {
    it(`${s.cName}: codec matches the C compiler`, () => {
      expect(fromCompiler[s.cName]).toEqual({ size: s.size, offsets: s.offsets });
    });
    it(`${s.cName}: codec matches BTF where present`, () => {
      const t = fromBtf.get(s.cName);
      if (!t) return; // ring buffer payloads have no BTF; the compiler check covers them
      expect(t.size).toBe(s.size);
      const btfOffsets = Object.fromEntries((t.members ?? []).map((m) => [m.name, m.bits_offset / 8]));
      expect(btfOffsets).toEqual(s.offsets);
    });
  }
});

describe('drop reasons', () => {
  it('bpf/shared/drop_reasons.h and drop-reasons.ts list the same numbers', () => {
    const header = readFileSync(join(root, 'bpf/shared/drop_reasons.h'), 'utf8');
    const fromHeader: Record<string, number> = {};
    for (const m of header.matchAll(/^#define SLUICE_(REASON_FORWARDED|DROP_\w+)\s+(\d+)/gm)) fromHeader[m[1]!] = Number(m[2]);
    const fromTs: Record<string, number> = { REASON_FORWARDED };
    for (const [k, v] of Object.entries(DropReason)) fromTs[`DROP_${k}`] = v;
    expect(fromHeader).toEqual(fromTs);
    expect(Object.keys(fromHeader).length).toBeGreaterThan(5);
  });
  it('drop reasons fit in a byte and never collide with tc action codes', () => {
    for (const v of Object.values(DropReason)) {
      expect(v).toBeGreaterThan(8);
      expect(v).toBeLessThan(256);
    }
    expect(new Set(Object.values(DropReason)).size).toBe(Object.values(DropReason).length);
  });
});
