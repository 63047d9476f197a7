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
import * as dnsCodec from '../../src/datapath/codec/dns.js';
import * as endpointCodec from '../../src/datapath/codec/endpoint.js';
import * as flowEventCodec from '../../src/datapath/codec/flow-event.js';
import * as fqdnCodec from '../../src/datapath/codec/fqdn.js';
import * as metricsCodec from '../../src/datapath/codec/metrics.js';
import * as policyCodec from '../../src/datapath/codec/policy.js';
import { ID_ANY, ID_HOST, MAX_FQDN_RULES } from '../../src/policy/index.js';

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
    for (const name of ['sluice_endpoint_key', 'sluice_endpoint', 'sluice_metrics_value']) {
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

// ---------------------------------------------------------------------------
// Constants are mirrored like structs: every #define in bpf/shared/ that
// TypeScript also knows is compared here (or, for the DNS proxy's, in
// src/dns/constants.test.ts), and one that nobody mirrors must be listed as
// kernel-only below, so a new #define cannot go unchecked.

/** Numeric `#define SLUICE_<NAME> <value>` lines of every shared header: 53, 0x10, (1U << 4). */
function sharedDefines(): Map<string, { header: string; value: number | undefined }> {
  const out = new Map<string, { header: string; value: number | undefined }>();
  for (const header of readdirSync(join(root, 'bpf/shared')).filter((f) => f.endsWith('.h'))) {
    const text = readFileSync(join(root, 'bpf/shared', header), 'utf8');
    for (const m of text.matchAll(/^\s*#\s*define\s+(SLUICE_\w+)[ \t]*(.*?)\s*(?:\/\*.*)?$/gm)) {
      const name = m[1]!;
      if (name.startsWith('SLUICE_SHARED_')) continue; // include guards
      const raw = m[2]!.trim();
      let value: number | undefined;
      const shift = /^\(\s*(\d+)U?\s*<<\s*(\d+)\s*\)$/.exec(raw);
      if (shift) value = Number(shift[1]) * 2 ** Number(shift[2]);
      else if (/^(0x[0-9a-f]+|\d+)U?$/i.test(raw)) value = Number(raw.replace(/U$/i, ''));
      out.set(name, { header, value });
    }
  }
  return out;
}

/** `SLUICE_<prefix>*` defines as { rest of the name: value }. */
function definesWithPrefix(defines: ReturnType<typeof sharedDefines>, prefix: string): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  for (const [name, d] of defines) if (name.startsWith(prefix)) out[name.slice(prefix.length)] = d.value;
  return out;
}

/** `FLAG_*` / `DIR_*` exports of a codec as { rest of the name: value }. */
function exportsWithPrefix(mod: Record<string, unknown>, prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(mod)) if (k.startsWith(prefix) && typeof v === 'number') out[k.slice(prefix.length)] = v;
  return out;
}

/** Where each family of shared #defines is checked, by name prefix. */
const CHECKED_PREFIXES: Record<string, string> = {
  SLUICE_EP_F_: 'endpoint flags (below)',
  SLUICE_EVENT_F_: 'flow event flags (below)',
  SLUICE_POLICY_PREFIX_: 'policy prefix lengths (below)',
  SLUICE_FQDN_MAX_RULES: 'FQDN rule cap (below)',
  SLUICE_ID_: 'identities (below)',
  SLUICE_DIR_: 'directions (below)',
  SLUICE_METRICS_: 'metrics slots (below)',
  SLUICE_CFG_F_: 'config flags (below)',
  SLUICE_DROP_: 'drop reasons (above)',
  SLUICE_REASON_FORWARDED: 'drop reasons (above)',
  SLUICE_DNS_: 'src/dns/constants.test.ts',
  SLUICE_MARK_: 'src/dns/constants.test.ts',
  SLUICE_PROXY_: 'src/dns/constants.test.ts',
  // Conntrack state bits: the kernel sets and reads them; userspace never
  // decodes a conntrack value's flags.
  SLUICE_CT_F_: 'kernel-only',
  SLUICE_CT_DIR_LOCAL: 'kernel-only, apart from the directions (below)',
};

/** C expressions over the structs, evaluated by the C compiler. */
function compilerValues(exprs: Record<string, string>): Record<string, number> {
  const names = Object.keys(exprs);
  const lines = [
    '#include <stddef.h>',
    '#include <stdio.h>',
    ...['policy.h', 'fqdn.h', 'endpoint.h', 'ipcache.h', 'metrics.h'].map((h) => `#include "${join(root, 'bpf/shared', h)}"`),
    'int main(void) {',
    '  printf("{");',
    ...names.map((n, i) => `  printf("%s\\"${n}\\":%lld", "${i ? ',' : ''}", (long long)(${exprs[n]}));`),
    '  printf("}");',
    '  return 0;',
    '}',
  ];
  const src = join(tmp, 'values.c');
  writeFileSync(src, lines.join('\n'));
  execFileSync('cc', ['-Wall', '-Werror', '-o', join(tmp, 'values'), src]);
  return JSON.parse(execFileSync(join(tmp, 'values'), { encoding: 'utf8' }));
}

describe('shared constants', () => {
  const defines = sharedDefines();

  it('every numeric #define in bpf/shared is checked somewhere or marked kernel-only', () => {
    const unchecked = [...defines.keys()].filter((name) => !Object.keys(CHECKED_PREFIXES).some((p) => name.startsWith(p)));
    expect(unchecked).toEqual([]);
    expect(defines.size).toBeGreaterThan(20);
  });

  it('config flags: SLUICE_CFG_F_* and the dns codec CFG_F_* are the same set of bits', () => {
    expect(definesWithPrefix(defines, 'SLUICE_CFG_F_')).toEqual(exportsWithPrefix(dnsCodec, 'CFG_F_'));
  });

  it('endpoint flags: SLUICE_EP_F_* and the endpoint codec FLAG_* are the same set of bits', () => {
    const fromHeader = definesWithPrefix(defines, 'SLUICE_EP_F_');
    expect(fromHeader).toEqual(exportsWithPrefix(endpointCodec, 'FLAG_'));
    const bits = Object.values(fromHeader) as number[];
    expect(bits.length).toBeGreaterThanOrEqual(6);
    expect(bits.every((b) => b > 0 && (b & (b - 1)) === 0)).toBe(true); // one bit each
    expect(new Set(bits).size).toBe(bits.length);
  });

  it('flow event flags: SLUICE_EVENT_F_* and the flow event codec FLAG_* are the same set of bits', () => {
    expect(definesWithPrefix(defines, 'SLUICE_EVENT_F_')).toEqual(exportsWithPrefix(flowEventCodec, 'FLAG_'));
    expect(Object.keys(exportsWithPrefix(flowEventCodec, 'FLAG_'))).toEqual(['AUDIT']);
  });

  it('policy prefix lengths: SLUICE_POLICY_PREFIX_* equal the codec, and both equal what the key layout gives', () => {
    expect(definesWithPrefix(defines, 'SLUICE_POLICY_PREFIX_')).toEqual({
      DIRECTION: policyCodec.PREFIX_DIRECTION,
      PROTOCOL: policyCodec.PREFIX_PROTOCOL,
      FULL: policyCodec.PREFIX_FULL,
    });
    // The header's numbers are hand-written: the compiler checks them against
    // the struct (bits after prefixlen through the end of each field).
    const fromStruct = compilerValues({
      DIRECTION: '(offsetof(struct sluice_policy_key, direction) + sizeof(((struct sluice_policy_key *)0)->direction) - offsetof(struct sluice_policy_key, policy_id)) * 8',
      PROTOCOL: '(offsetof(struct sluice_policy_key, protocol) + sizeof(((struct sluice_policy_key *)0)->protocol) - offsetof(struct sluice_policy_key, policy_id)) * 8',
      FULL: '(sizeof(struct sluice_policy_key) - offsetof(struct sluice_policy_key, policy_id)) * 8',
      HEADER_DIRECTION: 'SLUICE_POLICY_PREFIX_DIRECTION',
      HEADER_PROTOCOL: 'SLUICE_POLICY_PREFIX_PROTOCOL',
      HEADER_FULL: 'SLUICE_POLICY_PREFIX_FULL',
    });
    expect(fromStruct).toEqual({
      DIRECTION: fromStruct['HEADER_DIRECTION'],
      PROTOCOL: fromStruct['HEADER_PROTOCOL'],
      FULL: fromStruct['HEADER_FULL'],
      HEADER_DIRECTION: policyCodec.PREFIX_DIRECTION,
      HEADER_PROTOCOL: policyCodec.PREFIX_PROTOCOL,
      HEADER_FULL: policyCodec.PREFIX_FULL,
    });
  });

  it('FQDN rule cap: SLUICE_FQDN_MAX_RULES is the compiler\'s MAX_FQDN_RULES and the codec\'s MAX_RULES, and sizes the rules list', () => {
    const max = defines.get('SLUICE_FQDN_MAX_RULES')?.value;
    expect(max).toBe(MAX_FQDN_RULES);
    expect(fqdnCodec.MAX_RULES).toBe(MAX_FQDN_RULES);
    expect(compilerValues({ n: 'sizeof(((struct sluice_fqdn_rules *)0)->rules) / sizeof(__u32)' })).toEqual({ n: MAX_FQDN_RULES });
    expect(fqdnCodec.RULES_SIZE).toBe(fqdnCodec.RULES_OFFSETS.rules + 4 * MAX_FQDN_RULES);
    // A full list encodes; one more rule than the datapath holds does not.
    expect(fqdnCodec.decodeRules(fqdnCodec.encodeRules(Array.from({ length: MAX_FQDN_RULES }, (_, i) => i + 1)))).toHaveLength(MAX_FQDN_RULES);
    expect(() => fqdnCodec.encodeRules(Array.from({ length: MAX_FQDN_RULES + 1 }, (_, i) => i + 1))).toThrow(RangeError);
  });

  it('identities: SLUICE_ID_ANY and SLUICE_ID_HOST are the compiler\'s ID_ANY and ID_HOST', () => {
    expect(definesWithPrefix(defines, 'SLUICE_ID_')).toEqual({ ANY: ID_ANY, HOST: ID_HOST });
  });

  it('metrics slots: SLUICE_METRICS_* are the metrics codec METRICS_*, and every (reason, direction, audit) has its own slot', () => {
    expect(definesWithPrefix(defines, 'SLUICE_METRICS_')).toEqual(exportsWithPrefix(metricsCodec, 'METRICS_'));
    const slots = new Set<number>();
    for (let reason = 0; reason < 256; reason++) {
      for (const direction of [metricsCodec.DIR_FROM_POD, metricsCodec.DIR_TO_POD]) {
        for (const audit of [0, 1]) {
          const key = metricsCodec.encodeKey({ reason, direction, audit });
          expect(metricsCodec.decodeKey(key)).toEqual({ reason, direction, audit });
          slots.add(key.readUInt32LE(0));
        }
      }
    }
    expect(slots.size).toBe(1024);
    expect(Math.max(...slots)).toBeLessThan(metricsCodec.METRICS_SLOTS);
  });

  it('directions: SLUICE_DIR_* are the metrics codec DIR_* (flow events and policy keys use the same)', () => {
    expect(definesWithPrefix(defines, 'SLUICE_DIR_')).toEqual(exportsWithPrefix(metricsCodec, 'DIR_'));
    // A local flow's conntrack key never meets a per-veth one: conntrack
    // looks replies up with the direction flipped (direction ^ 1).
    const local = defines.get('SLUICE_CT_DIR_LOCAL')?.value;
    const dirs = Object.values(definesWithPrefix(defines, 'SLUICE_DIR_')).map(Number);
    expect(local).toBeTypeOf('number');
    expect(dirs.flatMap((d) => [d, d ^ 1])).not.toContain(local);
    expect(Object.keys(exportsWithPrefix(metricsCodec, 'DIR_')).sort()).toEqual(['FROM_POD', 'TO_POD']);
  });
});
