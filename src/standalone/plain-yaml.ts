// A fast path for the plain YAML that manifests are almost always written
// in. The `yaml` package builds a token stream, a syntax tree and a document
// model before the values: ~110 µs per NetworkPolicy rule, so a 2,500-rule
// file costs ~300 ms and four of them over a second. Most manifests use a
// small part of YAML: block mappings and sequences, single-line flow
// collections, plain and simply quoted scalars, comment lines. This reads
// exactly that part, straight into values, ~20× faster.
//
// It must never disagree with the `yaml` package (core schema, YAML 1.2):
// whatever it is not certain about — anchors, tags, block scalars, tabs,
// multi-line scalars, escapes, trailing comments, a scalar that might be a
// number or a boolean, a duplicate key, anything malformed — makes it answer
// `undefined`, and the caller parses with `yaml` as before (so every error
// message stays the library's). plain-yaml.test.ts checks it against the
// library on both sides of every rule below.

/** A document's value, or undefined: "not certain, use the yaml package". */
export function parsePlainDocument(chunk: string): unknown {
  try {
    return new PlainParser(chunk).document();
  } catch (err) {
    if (err === BAIL) return undefined;
    throw err;
  }
}

const BAIL = Symbol('not plain');
function bail(): never {
  throw BAIL;
}

/**
 * Characters that take the document off the fast path wherever they are:
 * tabs and CR (indentation and line-break subtleties), anchors, aliases,
 * tags, block scalars, directives, reserved indicators, escapes, explicit
 * keys, and anything outside printable ASCII.
 */
const UNSAFE = /[^\x20-\x7e\n]|[&*!|>%@`\\?]/;
/** A block mapping key (and flow mapping key): a plain word-like scalar. */
const KEY = /^[A-Za-z0-9_][A-Za-z0-9_./-]*$/;
/** `key:` alone, or `key: value`, in block context. */
const KEY_LINE = /^([A-Za-z0-9_][A-Za-z0-9_./-]*):(?: +(.*))?$/;
/** Core-schema words a plain scalar starting with a letter could resolve to instead of a string. */
const WORDS: Record<string, null | boolean> = { null: null, Null: null, NULL: null, true: true, True: true, TRUE: true, false: false, False: false, FALSE: false };
/** A decimal int the core schema reads as a Number, written canonically and safely sized. */
const INT = /^(?:0|[1-9][0-9]{0,14})$/;
/**
 * What might be a number (int, float, octal, hex, exponent, .inf/.nan) in
 * some schema: never decided here. Whatever else starts with a digit (an
 * address, a CIDR, a quantity like 100Mi) is a string.
 */
const NUMBERISH = /^[-+.0-9][-+.0-9a-fA-FxXoO_]*$/;
/** A plain scalar's first character: no indicator, and no `.` (`.inf`, `.5`). */
const PLAIN_START = /^[A-Za-z0-9_/]/;

interface Line {
  indent: number;
  text: string;
}

class PlainParser {
  readonly #lines: Line[] = [];
  #pos = 0;

  constructor(chunk: string) {
    if (UNSAFE.test(chunk)) bail();
    const raw = chunk.split('\n');
    let first = 0;
    if (raw[0]?.startsWith('---')) {
      // The marker alone on its line; content after it is left to yaml.
      if (raw[0].slice(3).trim() !== '') bail();
      first = 1;
    }
    for (let i = first; i < raw.length; i++) {
      const line = raw[i]!;
      const text = line.trimStart();
      if (text === '' || text.startsWith('#')) continue;
      // A comment after content (or a `#` inside a scalar): not decided here.
      if (text.includes('#')) bail();
      if (text.startsWith('---') || text.startsWith('...')) bail();
      this.#lines.push({ indent: line.length - text.length, text: text.trimEnd() });
    }
  }

  document(): unknown {
    if (!this.#lines.length) return null;
    const root = this.#lines[0]!;
    const value = this.#block(root.indent);
    if (this.#pos !== this.#lines.length) bail();
    return value;
  }

  #block(indent: number): unknown {
    const line = this.#lines[this.#pos]!;
    return isSeqItem(line.text) ? this.#seq(indent) : this.#map(indent);
  }

  #map(indent: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    while (this.#pos < this.#lines.length) {
      const line = this.#lines[this.#pos]!;
      if (line.indent < indent) break;
      if (line.indent > indent || isSeqItem(line.text)) bail();
      const m = KEY_LINE.exec(line.text);
      if (!m) bail();
      const key = m[1]!;
      if (!isStringKey(key) || Object.prototype.hasOwnProperty.call(out, key)) bail();
      this.#pos++;
      if (m[2] === undefined) {
        out[key] = this.#nested(indent, true);
      } else {
        out[key] = inline(m[2]);
        this.#noContinuation(indent);
      }
    }
    return out;
  }

  #seq(indent: number): unknown[] {
    const out: unknown[] = [];
    while (this.#pos < this.#lines.length) {
      const line = this.#lines[this.#pos]!;
      // A line at the sequence's indent that is no item ends it: the mapping
      // whose key it belongs to goes on (anywhere else, the caller bails).
      if (line.indent < indent || !isSeqItem(line.text)) break;
      if (line.indent > indent) bail();
      const rest = line.text.slice(1).trimStart();
      if (rest === '') {
        this.#pos++;
        out.push(this.#nested(indent, false));
      } else if (isSeqItem(rest)) {
        bail();
      } else if (KEY_LINE.test(rest)) {
        // A compact mapping: its keys line up with the first one, after the dash.
        this.#lines[this.#pos] = { indent: line.indent + line.text.length - rest.length, text: rest };
        out.push(this.#map(this.#lines[this.#pos]!.indent));
      } else {
        this.#pos++;
        out.push(inline(rest));
        this.#noContinuation(indent);
      }
    }
    return out;
  }

  /** The value of a key (or dash) with nothing after it: a deeper block, a sequence at the key's indent, or null. */
  #nested(indent: number, sameIndentSeq: boolean): unknown {
    const next = this.#lines[this.#pos];
    if (!next || next.indent < indent) return null;
    if (next.indent > indent) return this.#block(next.indent);
    return sameIndentSeq && isSeqItem(next.text) ? this.#seq(indent) : null;
  }

  /** A deeper line after a scalar would continue it (a multi-line scalar) or be an error: yaml decides. */
  #noContinuation(indent: number): void {
    const next = this.#lines[this.#pos];
    if (next && next.indent > indent) bail();
  }
}

function isSeqItem(text: string): boolean {
  return text === '-' || text.startsWith('- ');
}

function isStringKey(key: string): boolean {
  return key.length <= 512 && key !== '__proto__' && typeof plain(key) === 'string';
}

/** A value on the rest of a line: a flow collection, a quoted or a plain scalar. */
function inline(text: string): unknown {
  const c = text[0];
  if (c === '[' || c === '{') {
    const r = flow(text, 0);
    if (r.end !== text.length) bail();
    return r.value;
  }
  if (c === '"' || c === "'") {
    const body = text.slice(1, -1);
    if (text.length < 2 || text.at(-1) !== c || body.includes('"') || body.includes("'")) bail();
    return body;
  }
  // `: ` would start a nested mapping (an error); a trailing `:` a key.
  if (text.includes(': ') || text.endsWith(':')) bail();
  return plain(text);
}

/** A plain scalar's value under the core schema; bails on whatever is not surely a string or a small int. */
function plain(text: string): unknown {
  if (!PLAIN_START.test(text)) bail();
  if (INT.test(text)) return Number(text);
  if (NUMBERISH.test(text)) bail();
  if (Object.prototype.hasOwnProperty.call(WORDS, text)) return WORDS[text];
  return text;
}

/** A flow collection on one line, from `[` or `{` at `at`. */
function flow(text: string, at: number): { value: unknown; end: number } {
  const open = text[at];
  const close = open === '[' ? ']' : '}';
  const seq: unknown[] = [];
  const map: Record<string, unknown> = {};
  let i = skip(text, at + 1);
  if (text[i] === close) return { value: open === '[' ? seq : map, end: i + 1 };
  for (;;) {
    if (open === '[') {
      const r = flowNode(text, i);
      seq.push(r.value);
      i = skip(text, r.end);
      // `[a: b]` is a one-pair mapping inside the sequence: yaml decides.
      if (text[i] === ':') bail();
    } else {
      const r = flowScalar(text, i);
      if (typeof r.raw !== 'string' || !KEY.test(r.raw) || !isStringKey(r.raw) || Object.prototype.hasOwnProperty.call(map, r.raw)) bail();
      i = r.end;
      if (text[i] !== ':' || text[i + 1] !== ' ') bail();
      const v = flowNode(text, skip(text, i + 1));
      map[r.raw] = v.value;
      i = skip(text, v.end);
    }
    if (text[i] === close) return { value: open === '[' ? seq : map, end: i + 1 };
    if (text[i] !== ',') bail();
    i = skip(text, i + 1);
    // A trailing comma, or an empty entry: yaml decides.
    if (text[i] === close || text[i] === ',') bail();
  }
}

function flowNode(text: string, at: number): { value: unknown; end: number } {
  const c = text[at];
  if (c === '[' || c === '{') return flow(text, at);
  const r = flowScalar(text, at);
  return { value: r.value, end: r.end };
}

/** A scalar inside a flow collection: it ends at `,`, `:`, or a bracket. */
function flowScalar(text: string, at: number): { value: unknown; raw: string | undefined; end: number } {
  const c = text[at];
  if (c === '"' || c === "'") {
    const end = text.indexOf(c, at + 1);
    if (end < 0) bail();
    const body = text.slice(at + 1, end);
    if (/[,[\]{}:"']/.test(body)) bail();
    return { value: body, raw: undefined, end: end + 1 };
  }
  let end = at;
  while (end < text.length && !',:[]{}'.includes(text[end]!)) end++;
  const raw = text.slice(at, end).trimEnd();
  if (raw === '') bail();
  return { value: plain(raw), raw, end };
}

function skip(text: string, at: number): number {
  while (text[at] === ' ') at++;
  return at;
}
