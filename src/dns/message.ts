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
import dnsClasses from 'dns-packet/classes.js';
import dnsTypes from 'dns-packet/types.js';
import { escapeLabel, normalizeName, spelledAsIs } from '../policy/index.js';

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

/** dns-packet's decoders of one record and of AAAA data (not in its type declarations). */
type Decoder<T> = { decode: ((buf: Buffer, offset: number) => T) & { bytes: number } };
const answerCodec = (dnsPacket as unknown as { answer: Decoder<{ type: string; ttl?: number; data?: unknown }> }).answer;
const aaaaCodec = (dnsPacket as unknown as { aaaa: Decoder<string> }).aaaa;

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
  return quickQuery(buf) ?? parseQueryGeneral(buf);
}

/**
 * parseQuery's common case without dns-packet: a header with QR clear,
 * opcode QUERY and one question, nothing after it, the name uncompressed.
 * The result is what the general path returns for such a packet (dns-packet
 * decodes it whole exactly when the question is within the buffer and its
 * labels are well-formed, the checks below); undefined for anything else,
 * which the general path judges (and names what is wrong).
 */
export function quickQuery(buf: Buffer): ParsedQuery | undefined {
  if (buf.length < HEADER_BYTES + MIN_QUESTION_BYTES) return undefined;
  const flags = (buf[2]! << 8) | buf[3]!;
  if (flags & 0xf800) return undefined; // QR set or another opcode
  if (buf.readUInt16BE(4) !== 1 || buf.readUInt16BE(6) !== 0 || buf.readUInt16BE(8) !== 0 || buf.readUInt16BE(10) !== 0) return undefined;
  let at = HEADER_BYTES;
  let wire = 1;
  for (;;) {
    if (at >= buf.length) return undefined;
    const len = buf[at]!;
    if (len === 0) break;
    if (len & 0xc0) return undefined;
    wire += 1 + len;
    if (wire > 255 || at + 1 + len > buf.length) return undefined;
    at += 1 + len;
  }
  const end = at + 5; // the root label, type, class
  if (end > buf.length) return undefined;
  return {
    id: (buf[0]! << 8) | buf[1]!,
    flags: flags & 0x7fff,
    question: { name: readName(buf, HEADER_BYTES), type: dnsTypes.toString(buf.readUInt16BE(at + 1)), class: dnsClasses.toString(buf.readUInt16BE(at + 3)) },
    questionWire: copyOf(buf, HEADER_BYTES, end),
  };
}

/** buf[start, end) in a Buffer of its own (from Node's pool for small ones; no view of `buf` in between). */
function copyOf(buf: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  buf.copy(out, 0, start, end);
  return out;
}

/** parseQuery through dns-packet: any query, judged whole. */
export function parseQueryGeneral(buf: Buffer): ParsedQuery {
  const p = decode(buf, 'query');
  if (p.type !== 'query') throw new MalformedError('not a query (QR set)');
  const opcode = (buf.readUInt16BE(2) >> 11) & 0xf;
  if (opcode !== 0) throw new MalformedError(`unsupported opcode ${opcode}`);
  const q = p.questions?.[0];
  if (!q || p.questions!.length !== 1) throw new MalformedError(`${p.questions?.length ?? 0} questions (need exactly 1)`);
  const questionWire = copyOf(buf, HEADER_BYTES, questionEnd(buf));
  const name = readName(buf, HEADER_BYTES);
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
 * A name at `offset` in presentation format, following compression pointers;
 * where the name ends at `offset` goes to nameEnd. The same rules as
 * dns-packet's decoder (so a packet it decoded reads here too): a pointer
 * must point before the labels it continues (no loops), labels are 0-63
 * bytes, at most 255 bytes in all.
 */
function readName(buf: Buffer, offset: number): string {
  let text = '';
  let at = offset;
  let segment = offset;
  let end = -1;
  let wire = 1;
  // While every byte so far is written as itself (nearly every name), the
  // labels are gathered, dot-separated, in NAME_TEXT and become one string at
  // the end, not a slice and a concatenation per label.
  let plain = true;
  let n = 0;
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
    if (plain) {
      const from = n;
      if (n) NAME_TEXT[n++] = 0x2e; // '.'
      for (let i = at + 1; i <= at + len; i++) {
        const b = buf[i]!;
        if (!spelledAsIs(b)) {
          plain = false;
          break;
        }
        NAME_TEXT[n++] = b;
      }
      if (plain) {
        at += 1 + len;
        continue;
      }
      text = NAME_TEXT.toString('latin1', 0, from); // the labels before this one
    }
    text += (text ? '.' : '') + escapeLabel(buf, at + 1, at + 1 + len);
    at += 1 + len;
  }
  if (plain) text = NAME_TEXT.toString('latin1', 0, n);
  nameEnd = end < 0 ? at + 1 : end;
  return text || '.';
}

/** Where the name readName read last ends at its offset: its second result, not an object per name. */
let nameEnd = 0;

/** readName's scratch: a name of plain labels as text (at most 254 bytes: 255 on the wire, less the root). */
const NAME_TEXT = Buffer.alloc(256);

/**
 * The IPv4 address at buf[at, at + 4) as text, made in NAME_TEXT and turned
 * into one string (a template literal makes a string for every part on the
 * way: ~7 per address, for every A record the proxy learns).
 */
function ipv4At(buf: Buffer, at: number): string {
  let n = 0;
  for (let i = 0; i < 4; i++) {
    if (i) NAME_TEXT[n++] = 0x2e; // '.'
    const b = buf[at + i]!;
    if (b >= 100) NAME_TEXT[n++] = 0x30 + ((b / 100) | 0);
    if (b >= 10) NAME_TEXT[n++] = 0x30 + (((b / 10) | 0) % 10);
    NAME_TEXT[n++] = 0x30 + (b % 10);
  }
  return NAME_TEXT.toString('latin1', 0, n);
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
  return quickResponse(buf) ?? parseResponseGeneral(buf);
}

/**
 * parseResponse without dns-packet's decoding of the whole packet: one
 * question; A, AAAA and CNAME records read here, by the same rules as the
 * general path (readName for every name, the data filling RDLENGTH exactly);
 * any other record, and every record of the authority and additional
 * sections, by dns-packet's own record decoder, as its whole-packet decoder
 * would. The result is the general path's; undefined for a packet that is
 * not a response with one question, or that anything here finds wrong: the
 * general path then judges it (and names what is wrong).
 */
export function quickResponse(buf: Buffer): ParsedResponse | undefined {
  if (buf.length < HEADER_BYTES) return undefined;
  const flags = (buf[2]! << 8) | buf[3]!;
  if (!(flags & 0x8000) || buf.readUInt16BE(4) !== 1) return undefined;
  const an = buf.readUInt16BE(6);
  const rest = buf.readUInt16BE(8) + buf.readUInt16BE(10);
  if (HEADER_BYTES + MIN_QUESTION_BYTES + (an + rest) * MIN_RECORD_BYTES > buf.length) return undefined;
  try {
    const qname = readName(buf, HEADER_BYTES);
    const qend = nameEnd;
    let at = qend + 4;
    if (at > buf.length) return undefined;
    // The general path's shape, key order included (one hidden class for both).
    const res: ParsedResponse = { id: (buf[0]! << 8) | buf[1]!, rcode: flags & 0xf, answers: [] };
    res.question = { name: qname, type: dnsTypes.toString(buf.readUInt16BE(qend)), class: dnsClasses.toString(buf.readUInt16BE(qend + 2)) };
    for (let i = 0; i < an; i++) {
      // An owner that is a pointer to the question's name (nearly every
      // record's) reads as that name: the same text, not read again.
      let owner = qname;
      if (buf[at] === 0xc0 && buf[at + 1] === HEADER_BYTES) nameEnd = at + 2;
      else owner = readName(buf, at);
      const end = nameEnd;
      if (end + 10 > buf.length) return undefined;
      const type = buf.readUInt16BE(end);
      const rdata = end + 10;
      const rdlength = buf.readUInt16BE(end + 8);
      if (type === TYPE_A) {
        if (rdlength !== 4 || rdata + 4 > buf.length) return undefined;
        res.answers.push({ name: owner, type: 'A', ttl: buf.readUInt32BE(end + 4), data: ipv4At(buf, rdata) });
        at = rdata + 4;
      } else if (type === TYPE_AAAA) {
        if (rdlength !== 16 || rdata + 16 > buf.length) return undefined;
        res.answers.push({ name: owner, type: 'AAAA', ttl: buf.readUInt32BE(end + 4), data: aaaaCodec.decode(buf, end + 8) });
        at = rdata + 16;
      } else if (type === TYPE_CNAME) {
        const target = readName(buf, rdata);
        if (rdlength !== nameEnd - rdata) return undefined;
        res.answers.push({ name: owner, type: 'CNAME', ttl: buf.readUInt32BE(end + 4), data: target });
        at = nameEnd;
      } else {
        const rr = answerCodec.decode(buf, at);
        res.answers.push({ name: owner, type: rr.type, ttl: rr.ttl, data: rr.data });
        at += answerCodec.decode.bytes;
        if (!(at <= buf.length)) return undefined;
      }
    }
    for (let i = 0; i < rest; i++) {
      answerCodec.decode(buf, at);
      at += answerCodec.decode.bytes;
      if (!(at <= buf.length)) return undefined;
    }
    return res;
  } catch {
    return undefined;
  }
}

/** parseResponse through dns-packet: any response, judged whole. */
export function parseResponseGeneral(buf: Buffer): ParsedResponse {
  const p = decode(buf, 'response');
  if (p.type !== 'response') throw new MalformedError('not a response (QR clear)');
  const q = p.questions?.length === 1 ? p.questions[0] : undefined;
  const res: ParsedResponse = { id: p.id ?? 0, rcode: buf.readUInt16BE(2) & 0xf, answers: [] };
  if (!q) return res;
  let at = HEADER_BYTES;
  res.question = { name: readName(buf, at), type: q.type, class: q.class ?? 'IN' };
  at = nameEnd + 4; // type, class
  const decoded = (p.answers ?? []) as Array<{ type: string; ttl?: number; data?: unknown }>;
  for (const rr of decoded) {
    // Owner name, then type, class, TTL and RDLENGTH (10 bytes), then the data.
    const owner = readName(buf, at);
    const end = nameEnd;
    if (end + 10 > buf.length) throw new MalformedError('record runs past the end');
    const type = buf.readUInt16BE(end);
    if ((type === TYPE_CNAME) !== (rr.type === 'CNAME')) throw new MalformedError('answer records out of step with their decoding');
    const rdata = end + 10;
    const rdlength = buf.readUInt16BE(end + 8);
    const target = type === TYPE_CNAME ? readName(buf, rdata) : undefined;
    const targetEnd = nameEnd;
    // The data must fill RDLENGTH exactly: a record a stub resolver reads
    // differently from us (an A with 8 bytes of data) could make us learn an
    // address the pod never saw.
    const expected = type === TYPE_A ? 4 : type === TYPE_AAAA ? 16 : target !== undefined ? targetEnd - rdata : rdlength;
    if (rdlength !== expected) throw new MalformedError(`record data of ${rdlength} bytes where its type takes ${expected}`);
    res.answers.push({ name: owner, type: rr.type, ttl: rr.ttl, data: target ?? rr.data });
    // The next record starts where dns-packet read this one to, so each name
    // read here belongs to the record whose data it decoded. dns-packet frames
    // an A, an AAAA and a CNAME by their data, not by RDLENGTH (and other
    // types each their own way: its own decoder says where they end).
    if (type === TYPE_A) at = rdata + 4;
    else if (type === TYPE_AAAA) at = rdata + 16;
    else if (target !== undefined) at = targetEnd;
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
  // The parser gives an owner that points at the question the question's own
  // string: its normal form is worked out once, not per record.
  const question = res.question.name;
  const normal = normalizeName(question);
  // At most MAX_CHAIN + 1 names: scanning them costs less than a Set (this runs for every answer).
  const chain = [normal];
  for (let hops = 0; hops < MAX_CHAIN; hops++) {
    const cname = cnameOf(answers, chain[chain.length - 1]!, question, normal);
    if (!cname || typeof cname.data !== 'string') break;
    const next = normalizeName(cname.data);
    if (chain.includes(next)) break;
    chain.push(next);
  }
  const addresses: Learned['addresses'] = [];
  for (const rr of answers) {
    if ((rr.type === 'A' || rr.type === 'AAAA') && typeof rr.data === 'string' && chain.includes(ownerOf(rr, question, normal))) {
      addresses.push({ ip: rr.data, ttl: ttlOf(rr.ttl) });
    }
  }
  return { names: chain, addresses };
}

/** The first CNAME record owned by `name` (normalized). */
function cnameOf(answers: readonly AnswerRecord[], name: string, question: string, normal: string): AnswerRecord | undefined {
  for (const rr of answers) if (rr.type === 'CNAME' && ownerOf(rr, question, normal) === name) return rr;
  return undefined;
}

/** A record's owner, normalized: `normal` if it is the question's own string. */
function ownerOf(rr: AnswerRecord, question: string, normal: string): string {
  return rr.name === question ? normal : normalizeName(rr.name);
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
