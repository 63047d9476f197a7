// The parts of DNS the proxy needs: the question of a query, what a trusted
// answer teaches (names of the CNAME chain, addresses with TTLs), and the
// error answers it sends itself. Parsing is dns-packet's, except for names;
// everything here treats its input as hostile (any exception means
// "malformed").
//
// Names are read off the wire here, not taken from dns-packet: it joins a
// name's labels with '.' as they are, so `dot\.example.test` (the labels
// "dot.example" and "test") comes out as "dot.example.test", a name of three
// labels that a rule may name, and bytes that are not UTF-8 all come out as
// U+FFFD. Every name below is in presentation format (policy/dnsname.ts),
// where the text is the same exactly when the labels are.
import * as dnsPacket from 'dns-packet';
import { escapeLabel, normalizeName } from '../policy/index.js';

export interface Question {
  /** As asked, in presentation format (`\.` for a dot inside a label, `\DDD` for odd bytes; case preserved), no trailing dot; the root is '.'. */
  name: string;
  type: string;
  class: string;
}

export interface ParsedQuery {
  id: number;
  /** Flags word (RD etc.) as received, QR clear. */
  flags: number;
  question: Question;
  /**
   * The question section as received. Error answers echo it byte for byte:
   * re-encoding the decoded question is lossy (dns-packet turns label bytes
   * that are not UTF-8 into U+FFFD, which can push a label past 63 bytes, and
   * an unknown class into 0), and a client drops an answer to another question.
   */
  questionWire: Buffer;
}

export interface Learned {
  /** Normalized presentation format (normalizeName): the question and every CNAME target in the chain from it. */
  names: string[];
  /** A/AAAA data owned by a chain name. */
  addresses: Array<{ ip: string; ttl: number }>;
}

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_REFUSED = 5;

/** dns-packet's decoder of one record (not in its type declarations). */
const answerCodec = (dnsPacket as unknown as { answer: { decode: ((buf: Buffer, offset: number) => unknown) & { bytes: number } } }).answer;

const MAX_CHAIN = 16;
const TYPE_A = 1;
const TYPE_CNAME = 5;
const TYPE_AAAA = 28;
const HEADER_BYTES = 12;
/** The least a question (root name, type, class) and a record (root name, type, class, TTL, rdlength) take on the wire. */
const MIN_QUESTION_BYTES = 5;
const MIN_RECORD_BYTES = 11;

export class MalformedError extends Error {
  override readonly name = 'MalformedError';
}

/**
 * dns-packet does not bounds-check record data: an A or AAAA record cut short
 * decodes as "203.0.113.undefined", or as another, zero-filled IPv6 address,
 * and a TXT whose length runs past the end as garbage. What it reports as read
 * is then past the end (or NaN), so that is checked here.
 */
function decode(buf: Buffer, what: string): dnsPacket.DecodedPacket {
  // dns-packet allocates an array per section from the header's counts before
  // reading a record: a 12-byte packet claiming 4 × 65535 entries costs
  // milliseconds. Counts the packet cannot hold are refused first.
  if (buf.length >= HEADER_BYTES) {
    const records = buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10);
    const least = HEADER_BYTES + buf.readUInt16BE(4) * MIN_QUESTION_BYTES + records * MIN_RECORD_BYTES;
    if (least > buf.length) throw new MalformedError(`${what} too short for its section counts (${least} > ${buf.length} bytes)`);
  }
  let p: dnsPacket.DecodedPacket;
  try {
    p = dnsPacket.decode(buf);
  } catch (err) {
    throw new MalformedError(`undecodable ${what}: ${(err as Error).message}`);
  }
  if (!(dnsPacket.decode.bytes <= buf.length)) throw new MalformedError(`truncated ${what}`);
  return p;
}

/** A query the proxy will handle: one question, opcode QUERY, QR clear. */
export function parseQuery(buf: Buffer): ParsedQuery {
  const p = decode(buf, 'query');
  if (p.type !== 'query') throw new MalformedError('not a query (QR set)');
  const opcode = (buf.readUInt16BE(2) >> 11) & 0xf;
  if (opcode !== 0) throw new MalformedError(`unsupported opcode ${opcode}`);
  const q = p.questions?.[0];
  if (!q || p.questions!.length !== 1) throw new MalformedError(`${p.questions?.length ?? 0} questions (need exactly 1)`);
  const questionWire = Buffer.from(buf.subarray(HEADER_BYTES, questionEnd(buf)));
  const name = readName(buf, HEADER_BYTES).text;
  return { id: p.id ?? 0, flags: buf.readUInt16BE(2) & 0x7fff, question: { name, type: q.type, class: q.class ?? 'IN' }, questionWire };
}

/** Where the question of a query ends: its labels, the root label, type and class. */
function questionEnd(buf: Buffer): number {
  let at = HEADER_BYTES;
  while (at < buf.length && buf[at] !== 0) {
    // Nothing precedes the only question but the header: a pointer there is no name anyone sends.
    if (buf[at]! & 0xc0) throw new MalformedError('compressed name in the question of a query');
    at += 1 + buf[at]!;
  }
  if (at + 5 > buf.length) throw new MalformedError('question runs past the end');
  return at + 5;
}

/**
 * A name at `offset` in presentation format, following compression pointers,
 * and where the name ends at `offset`. The same rules as dns-packet's
 * decoder (so a packet it decoded reads here too): a pointer must point
 * before the labels it continues (no loops), labels are 0-63 bytes, at most
 * 255 bytes in all.
 */
function readName(buf: Buffer, offset: number): { text: string; end: number } {
  let text = '';
  let at = offset;
  let segment = offset;
  let end = -1;
  let wire = 1;
  for (;;) {
    if (at >= buf.length) throw new MalformedError('name runs past the end');
    const len = buf[at]!;
    if (len === 0) break;
    if ((len & 0xc0) === 0xc0) {
      if (at + 1 >= buf.length) throw new MalformedError('name runs past the end');
      const target = buf.readUInt16BE(at) & 0x3fff;
      if (target >= segment) throw new MalformedError('name compression pointer does not point back');
      if (end < 0) end = at + 2;
      at = segment = target;
      continue;
    }
    if (len & 0xc0) throw new MalformedError(`label type 0x${(len & 0xc0).toString(16)}`);
    if (at + 1 + len > buf.length) throw new MalformedError('label runs past the end');
    wire += 1 + len;
    if (wire > 255) throw new MalformedError('name longer than 255 bytes');
    text += (text ? '.' : '') + escapeLabel(buf, at + 1, at + 1 + len);
    at += 1 + len;
  }
  return { text: text || '.', end: end < 0 ? at + 1 : end };
}

/** An answer record as learnFrom needs it: names read off the wire, data as dns-packet decoded it. */
export interface AnswerRecord {
  /** Presentation format, as Question.name. */
  name: string;
  type: string;
  ttl?: number;
  /** An address for A/AAAA; the target (presentation format) for CNAME. */
  data?: unknown;
}

export interface ParsedResponse {
  id: number;
  rcode: number;
  question?: Question;
  /** The answer section; empty unless there is exactly one question. */
  answers: AnswerRecord[];
}

export function parseResponse(buf: Buffer): ParsedResponse {
  const p = decode(buf, 'response');
  if (p.type !== 'response') throw new MalformedError('not a response (QR clear)');
  const q = p.questions?.length === 1 ? p.questions[0] : undefined;
  const res: ParsedResponse = { id: p.id ?? 0, rcode: buf.readUInt16BE(2) & 0xf, answers: [] };
  if (!q) return res;
  let at = HEADER_BYTES;
  const qname = readName(buf, at);
  res.question = { name: qname.text, type: q.type, class: q.class ?? 'IN' };
  at = qname.end + 4; // type, class
  const decoded = (p.answers ?? []) as Array<{ type: string; ttl?: number; data?: unknown }>;
  for (const rr of decoded) {
    // Owner name, then type, class, TTL and RDLENGTH (10 bytes), then the data.
    const owner = readName(buf, at);
    if (owner.end + 10 > buf.length) throw new MalformedError('record runs past the end');
    const type = buf.readUInt16BE(owner.end);
    if ((type === TYPE_CNAME) !== (rr.type === 'CNAME')) throw new MalformedError('answer records out of step with their decoding');
    const rdata = owner.end + 10;
    const rdlength = buf.readUInt16BE(owner.end + 8);
    const target = type === TYPE_CNAME ? readName(buf, rdata) : undefined;
    // The data must fill RDLENGTH exactly: a record a stub resolver reads
    // differently from us (an A with 8 bytes of data) could make us learn an
    // address the pod never saw.
    const expected = type === TYPE_A ? 4 : type === TYPE_AAAA ? 16 : target ? target.end - rdata : rdlength;
    if (rdlength !== expected) throw new MalformedError(`record data of ${rdlength} bytes where its type takes ${expected}`);
    res.answers.push({ name: owner.text, type: rr.type, ttl: rr.ttl, data: target ? target.text : rr.data });
    // The next record starts where dns-packet read this one to, so each name
    // read here belongs to the record whose data it decoded. dns-packet frames
    // an A, an AAAA and a CNAME by their data, not by RDLENGTH (and other
    // types each their own way: its own decoder says where they end).
    if (type === TYPE_A) at = rdata + 4;
    else if (type === TYPE_AAAA) at = rdata + 16;
    else if (target) at = target.end;
    else {
      answerCodec.decode(buf, at);
      at += answerCodec.decode.bytes;
    }
  }
  return res;
}

export function sameQuestion(a: Question, b: Question | undefined): boolean {
  return !!b && normalizeName(a.name) === normalizeName(b.name) && a.type === b.type && a.class === b.class;
}

/** What a trusted NOERROR answer teaches: the chain's names and their addresses. */
export function learnFrom(res: ParsedResponse): Learned {
  if (res.rcode !== RCODE_NOERROR || !res.question) return { names: [], addresses: [] };
  const answers = res.answers;
  const chain = [normalizeName(res.question.name)];
  const inChain = new Set(chain);
  for (let hops = 0; hops < MAX_CHAIN; hops++) {
    const at = chain[chain.length - 1]!;
    const cname = answers.find((rr) => rr.type === 'CNAME' && normalizeName(rr.name) === at);
    if (!cname || typeof cname.data !== 'string') break;
    const next = normalizeName(cname.data);
    if (inChain.has(next)) break;
    chain.push(next);
    inChain.add(next);
  }
  const addresses: Learned['addresses'] = [];
  for (const rr of answers) {
    if ((rr.type === 'A' || rr.type === 'AAAA') && typeof rr.data === 'string' && inChain.has(normalizeName(rr.name))) {
      addresses.push({ ip: rr.data, ttl: ttlOf(rr.ttl) });
    }
  }
  return { names: chain, addresses };
}

/** RFC 2181 8: a TTL with the top bit set is treated as zero. */
function ttlOf(ttl: number | undefined): number {
  return ttl !== undefined && ttl >= 0 && ttl < 0x80000000 ? ttl : 0;
}

/**
 * An answer of our own (REFUSED, SERVFAIL, FORMERR): the question echoed from
 * `questionWire`, or none (a FORMERR to what has no readable question).
 */
export function errorResponse(query: { id: number; flags: number; questionWire?: Buffer }, rcode: number): Buffer {
  const rd = query.flags & 0x0100;
  const opcode = query.flags & 0x7800;
  if (query.questionWire) {
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt16BE(query.id, 0);
    header.writeUInt16BE(0x8000 /* QR */ | opcode | rd | 0x0080 /* RA */ | rcode, 2);
    header.writeUInt16BE(1, 4);
    return Buffer.concat([header, query.questionWire]);
  }
  return dnsPacket.encode({
    id: query.id,
    type: 'response',
    flags: opcode | rd | 0x0080 /* RA */ | rcode,
    questions: [],
  });
}

/**
 * An answer too big for the pod's UDP path, cut to its question with TC set:
 * the client retries over TCP (RFC 1035 4.2.1), which is intercepted too.
 */
export function truncatedResponse(id: number, flags: number, questionWire: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(flags | 0x8000 /* QR */ | 0x0200 /* TC */, 2);
  header.writeUInt16BE(1, 4);
  return Buffer.concat([header, questionWire]);
}

/** The id and flags of anything at least a header long, for FORMERR. */
export function headerOf(buf: Buffer): { id: number; flags: number } | undefined {
  return buf.length >= 12 ? { id: buf.readUInt16BE(0), flags: buf.readUInt16BE(2) & 0x7fff } : undefined;
}
