// bpf/shared/dns.h and constants.ts must agree: the datapath rewrites DNS to
// the address and port the proxy listens on.
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CFG_F_REDIRECT } from '../datapath/codec/dns.js';
import { DNS_PORT, MARK_MASK, MARK_PROXY_SOCK, MARK_TO_PROXY, PROXY_PORT, PROXY_RULE_PRIORITY, PROXY_TABLE, PROXY_V4, PROXY_V6 } from './constants.js';

const HEADER = join(import.meta.dirname, '../../bpf/shared/dns.h');

/** `#define SLUICE_<NAME> <value>` lines, comments stripped. */
function defines(path: string): Map<string, string> {
  const text = readFileSync(path, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^[ \t]*#[ \t]*define[ \t]+(SLUICE_\w+)[ \t]+(.+?)[ \t]*$/gm)) out.set(m[1]!, m[2]!); // the include guard has no value: not matched
  return out;
}

function cNumber(text: string): number {
  const t = text.trim().replace(/[uUlL]+$/, '');
  if (!/^(0[xX][0-9a-fA-F]+|0|[1-9][0-9]*)$/.test(t)) throw new Error(`not a C integer literal: ${JSON.stringify(text)}`);
  return Number(t);
}

function cString(text: string): string {
  const m = /^"([^"\\]*)"$/.exec(text.trim());
  if (!m) throw new Error(`not a plain C string literal: ${JSON.stringify(text)}`);
  return m[1]!;
}

const cBytes = (text: string): number[] => text.split(',').map(cNumber);

/** An IPv6 address as its 16 bytes, network order. */
function v6Bytes(addr: string): number[] {
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
  const words = (s: string | undefined) => (s ? s.split(':').map((w) => parseInt(w, 16)) : []);
  const h = words(head);
  const t = words(tail);
  const all = tail === undefined ? h : [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
  expect(all).toHaveLength(8);
  return all.flatMap((w) => [w >> 8, w & 0xff]);
}

const v4Bytes = (addr: string): number[] => addr.split('.').map(Number);

describe('constants.ts mirrors bpf/shared/dns.h', () => {
  const h = defines(HEADER);

  it('has exactly the macros this test knows (a new one needs a mirror)', () => {
    expect([...h.keys()].sort()).toEqual([
      'SLUICE_CFG_F_REDIRECT',
      'SLUICE_DNS_PORT', 'SLUICE_DNS_PROXY_PORT', 'SLUICE_DNS_PROXY_V4', 'SLUICE_DNS_PROXY_V4_BYTES', 'SLUICE_DNS_PROXY_V6', 'SLUICE_DNS_PROXY_V6_BYTES',
      'SLUICE_MARK_MASK', 'SLUICE_MARK_PROXY_SOCK', 'SLUICE_MARK_TO_PROXY', 'SLUICE_PROXY_RULE_PRIORITY', 'SLUICE_PROXY_TABLE',
    ]);
  });

  it('the node config flag for local delivery (its mirror is the datapath codec\'s)', () => {
    expect(cNumber(h.get('SLUICE_CFG_F_REDIRECT')!.replace(/^\(1U << (\d+)\)$/, (_, n: string) => String(1 << Number(n))))).toBe(CFG_F_REDIRECT);
  });

  it('DNS port', () => {
    expect(cNumber(h.get('SLUICE_DNS_PORT')!)).toBe(DNS_PORT);
    expect(DNS_PORT).toBe(53);
  });

  it('proxy port', () => {
    expect(cNumber(h.get('SLUICE_DNS_PROXY_PORT')!)).toBe(PROXY_PORT);
  });

  it('IPv4 proxy address, as a string and as bytes', () => {
    expect(isIPv4(PROXY_V4)).toBe(true);
    expect(cString(h.get('SLUICE_DNS_PROXY_V4')!)).toBe(PROXY_V4);
    expect(cBytes(h.get('SLUICE_DNS_PROXY_V4_BYTES')!)).toEqual(v4Bytes(PROXY_V4));
  });

  it('IPv6 proxy address, as a string and as bytes', () => {
    expect(isIPv6(PROXY_V6)).toBe(true);
    expect(v6Bytes(cString(h.get('SLUICE_DNS_PROXY_V6')!))).toEqual(v6Bytes(PROXY_V6));
    expect(cBytes(h.get('SLUICE_DNS_PROXY_V6_BYTES')!)).toEqual(v6Bytes(PROXY_V6));
  });

  it('the proxy addresses stay on the node (link-local v4, unique-local v6)', () => {
    expect(v4Bytes(PROXY_V4).slice(0, 2)).toEqual([169, 254]);
    expect(v6Bytes(PROXY_V6)[0]! & 0xfe).toBe(0xfc);
  });

  it('transparent upstream marks, table and rule', () => {
    expect(cNumber(h.get('SLUICE_MARK_MASK')!)).toBe(MARK_MASK);
    expect(cNumber(h.get('SLUICE_MARK_PROXY_SOCK')!)).toBe(MARK_PROXY_SOCK);
    expect(cNumber(h.get('SLUICE_MARK_TO_PROXY')!)).toBe(MARK_TO_PROXY);
    expect(cNumber(h.get('SLUICE_PROXY_TABLE')!)).toBe(PROXY_TABLE);
    expect(cNumber(h.get('SLUICE_PROXY_RULE_PRIORITY')!)).toBe(PROXY_RULE_PRIORITY);
    // Both marks inside the mask, distinct under it, clear of kube-proxy's bits.
    for (const m of [MARK_PROXY_SOCK, MARK_TO_PROXY]) {
      expect(m & ~MARK_MASK).toBe(0);
      expect(m & 0xc000).toBe(0);
    }
    expect(MARK_PROXY_SOCK & MARK_MASK).not.toBe(MARK_TO_PROXY & MARK_MASK);
  });

  it('parses the macro shapes it relies on', () => {
    expect(cBytes('0xfd, 0x5c, 0, 0x53')).toEqual([0xfd, 0x5c, 0, 0x53]);
    expect(v6Bytes('fd5c:1ce::53')).toEqual([0xfd, 0x5c, 0x01, 0xce, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53]);
    expect(() => cNumber('FOO + 1')).toThrow('not a C integer literal');
    expect(() => cString('"a" "b"')).toThrow('not a plain C string literal');
  });
});
