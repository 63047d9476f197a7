// The parts of DNS the proxy needs: the question of a query, what a trusted
// answer teaches (names of the CNAME chain, addresses with TTLs), and the
// error answers it sends itself. Parsing is dns-packet's; everything here
// treats its input as hostile (any exception means "malformed").
import * as dnsPacket from 'dns-packet';

export interface Question {
  /** As asked (case preserved), no trailing dot. */
  name: string;
  type: string;
  class: string;
}

export interface ParsedQuery {
  id: number;
  /** Flags word (RD etc.) as received, QR clear. */
  flags: number;
  question: Question;
}

export interface Learned {
  /** Normalized (lower case, no trailing dot): the question and every CNAME target in the chain from it. */
  names: string[];
  /** A/AAAA data owned by a chain name. */
  addresses: Array<{ ip: string; ttl: number }>;
}

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_REFUSED = 5;

const MAX_CHAIN = 16;

export class MalformedError extends Error {
  override readonly name = 'MalformedError';
}

export function lower(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** A query the proxy will handle: one question, opcode QUERY, QR clear. */
export function parseQuery(buf: Buffer): ParsedQuery {
  let p: dnsPacket.DecodedPacket;
  try {
    p = dnsPacket.decode(buf);
  } catch (err) {
    throw new MalformedError(`undecodable query: ${(err as Error).message}`);
  }
  if (p.type !== 'query') throw new MalformedError('not a query (QR set)');
  const opcode = (buf.readUInt16BE(2) >> 11) & 0xf;
  if (opcode !== 0) throw new MalformedError(`unsupported opcode ${opcode}`);
  const q = p.questions?.[0];
  if (!q || p.questions!.length !== 1) throw new MalformedError(`${p.questions?.length ?? 0} questions (need exactly 1)`);
  return { id: p.id ?? 0, flags: buf.readUInt16BE(2) & 0x7fff, question: { name: q.name, type: q.type, class: q.class ?? 'IN' } };
}

export interface ParsedResponse {
  id: number;
  rcode: number;
  question?: Question;
  packet: dnsPacket.DecodedPacket;
}

export function parseResponse(buf: Buffer): ParsedResponse {
  let p: dnsPacket.DecodedPacket;
  try {
    p = dnsPacket.decode(buf);
  } catch (err) {
    throw new MalformedError(`undecodable response: ${(err as Error).message}`);
  }
  if (p.type !== 'response') throw new MalformedError('not a response (QR clear)');
  const q = p.questions?.length === 1 ? p.questions[0] : undefined;
  return { id: p.id ?? 0, rcode: buf.readUInt16BE(2) & 0xf, question: q && { name: q.name, type: q.type, class: q.class ?? 'IN' }, packet: p };
}

export function sameQuestion(a: Question, b: Question | undefined): boolean {
  return !!b && lower(a.name) === lower(b.name) && a.type === b.type && a.class === b.class;
}

/** What a trusted NOERROR answer teaches: the chain's names and their addresses. */
export function learnFrom(res: ParsedResponse): Learned {
  if (res.rcode !== RCODE_NOERROR || !res.question) return { names: [], addresses: [] };
  const answers = (res.packet.answers ?? []) as Array<{ type: string; name: string; ttl?: number; data?: unknown }>;
  const chain = [lower(res.question.name)];
  const inChain = new Set(chain);
  for (let hops = 0; hops < MAX_CHAIN; hops++) {
    const at = chain[chain.length - 1]!;
    const cname = answers.find((rr) => rr.type === 'CNAME' && lower(rr.name) === at);
    if (!cname || typeof cname.data !== 'string') break;
    const next = lower(cname.data);
    if (inChain.has(next)) break;
    chain.push(next);
    inChain.add(next);
  }
  const addresses: Learned['addresses'] = [];
  for (const rr of answers) {
    if ((rr.type === 'A' || rr.type === 'AAAA') && typeof rr.data === 'string' && inChain.has(lower(rr.name))) {
      addresses.push({ ip: rr.data, ttl: Math.max(0, rr.ttl ?? 0) });
    }
  }
  return { names: chain, addresses };
}

/** An answer of our own (REFUSED, SERVFAIL, FORMERR) to a query. */
export function errorResponse(query: ParsedQuery | { id: number; flags: number; question?: Question }, rcode: number): Buffer {
  const rd = query.flags & 0x0100;
  const opcode = query.flags & 0x7800;
  return dnsPacket.encode({
    id: query.id,
    type: 'response',
    flags: opcode | rd | 0x0080 /* RA */ | rcode,
    questions: query.question ? [{ name: query.question.name, type: query.question.type as dnsPacket.RecordType, class: query.question.class as dnsPacket.RecordClass }] : [],
  });
}

/** The id and flags of anything at least a header long, for FORMERR. */
export function headerOf(buf: Buffer): { id: number; flags: number } | undefined {
  return buf.length >= 12 ? { id: buf.readUInt16BE(0), flags: buf.readUInt16BE(2) & 0x7fff } : undefined;
}
