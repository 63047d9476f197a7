// DNS names as text: the presentation format of RFC 1035 §5.1, the one form
// every name takes inside Sluice (learned names, the cache, the journal, rule
// matching, `sluice fqdn`, logs).
//
// On the wire a name is a list of labels of any bytes: a label may hold a
// dot, a backslash, a space or bytes that are not UTF-8. Joining the labels
// with '.' as they are (as dns-packet does) makes `dot\.example.test` (the
// labels "dot.example" and "test") and `dot.example.test` (three labels) the
// same string, so a trusted answer for the first would open traffic for a
// rule naming the second. Here every label is escaped, so two names are the
// same text exactly when they have the same labels:
// - '.' and '\' (and, as BIND and dig print them, '"', '(', ')', ';', '@',
//   '$') are preceded by a backslash;
// - a byte outside '!'..'~' (space, control, anything not ASCII) is `\DDD`,
//   three decimal digits;
// - everything else is itself.
// Each byte has exactly one spelling, so the text is canonical; normalizeName
// then folds ASCII case and drops the root's trailing dot for comparisons.
// Escapes use only digits and punctuation, so folding the text folds exactly
// the letters of the labels.

/** Longest label and longest wire name (length bytes and the root label included), RFC 1035 2.3.4. */
export const MAX_LABEL_BYTES = 63;
export const MAX_NAME_WIRE_BYTES = 255;

const BACKSLASH = 0x5c;
const DOT = 0x2e;

/** How each byte is written: as itself, after a backslash, or as \DDD. */
const AS_IS = 0;
const ESCAPED = 1;
const DECIMAL = 2;
const SPELLING = new Uint8Array(256).map((_, b) => {
  if (b <= 0x20 || b >= 0x7f) return DECIMAL;
  // '.' and '\', and the printable characters presentation format escapes with a backslash (dig's set).
  return '."()\\;@$'.includes(String.fromCharCode(b)) ? ESCAPED : AS_IS;
});

/** Whether byte `b` of a label is written as itself in presentation format (escapeLabel copies it). */
export function spelledAsIs(b: number): boolean {
  return SPELLING[b] === AS_IS;
}

/**
 * The bytes start..end of `bytes` (one label) in presentation format, case
 * preserved. Runs once per label of every name the proxy reads: a plain label
 * (nearly all of them) is one latin1 slice.
 */
export function escapeLabel(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let i = start;
  while (i < end && SPELLING[bytes[i]!] === AS_IS) i++;
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let out = buf.toString('latin1', start, i);
  for (; i < end; i++) {
    const b = bytes[i]!;
    const how = SPELLING[b];
    if (how === AS_IS) out += String.fromCharCode(b);
    else if (how === ESCAPED) out += `\\${String.fromCharCode(b)}`;
    else out += `\\${b < 10 ? '00' : b < 100 ? '0' : ''}${b}`;
  }
  return out;
}

/** Labels' bytes as a name in presentation format, without the trailing dot; the root is '.'. */
export function nameText(labels: readonly Uint8Array[]): string {
  return labels.length ? labels.map((l) => escapeLabel(l)).join('.') : '.';
}

/** Whether the last character of `text` is a dot that ends the name (not an escaped `\.`). */
function endsWithSeparator(text: string): boolean {
  if (!text.endsWith('.')) return false;
  let slashes = 0;
  for (let i = text.length - 2; i >= 0 && text.charCodeAt(i) === BACKSLASH; i--) slashes++;
  return slashes % 2 === 0;
}

/**
 * DNS names are case-insensitive in ASCII only (RFC 4343). Lower-casing other
 * characters would let a name such as "\u212Aubernetes.io" (Kelvin sign)
 * compare equal to "kubernetes.io", so only A-Z are folded.
 */
function asciiLower(s: string): string {
  return /[A-Z]/.test(s) ? s.replace(/[A-Z]+/g, (m) => m.toLowerCase()) : s;
}

/**
 * A name in presentation format as names are compared: ASCII lower case, the
 * trailing dot (if it is one, not the end of an escaped `\.`) removed.
 */
export function normalizeName(name: string): string {
  return asciiLower(endsWithSeparator(name) ? name.slice(0, -1) : name);
}

/**
 * Presentation-format text back to its labels' bytes: `\X` is X, `\DDD` the
 * byte DDD (≤ 255), a character beyond ASCII its UTF-8 bytes; a trailing dot
 * is optional; '.' and '' are the root. Undefined for text that is not a
 * name: an empty label, a dangling or out-of-range escape, a label over 63
 * bytes or a name over 255 on the wire.
 */
export function parseName(text: string): Buffer[] | undefined {
  if (text === '' || text === '.') return [];
  const body = endsWithSeparator(text) ? text.slice(0, -1) : text;
  const labels: Buffer[] = [];
  let label: number[] = [];
  let wire = 1; // the root label
  const end = (): boolean => {
    if (!label.length || label.length > MAX_LABEL_BYTES) return false;
    wire += 1 + label.length;
    labels.push(Buffer.from(label));
    label = [];
    return wire <= MAX_NAME_WIRE_BYTES;
  };
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (c === DOT) {
      if (!end()) return undefined;
    } else if (c === BACKSLASH) {
      const next = body.charCodeAt(i + 1);
      if (Number.isNaN(next)) return undefined;
      if (next >= 0x30 && next <= 0x39) {
        const ddd = body.slice(i + 1, i + 4);
        if (!/^\d{3}$/.test(ddd) || Number(ddd) > 255) return undefined;
        label.push(Number(ddd));
        i += 3;
      } else {
        const ch = String.fromCodePoint(body.codePointAt(i + 1)!);
        label.push(...Buffer.from(ch, 'utf8'));
        i += ch.length;
      }
    } else {
      const ch = String.fromCodePoint(body.codePointAt(i)!);
      label.push(...Buffer.from(ch, 'utf8'));
      i += ch.length - 1;
    }
  }
  return end() ? labels : undefined;
}

/** `text` as normalizeName would give it had it come off the wire; undefined if it is not a name. */
export function canonicalName(text: string): string | undefined {
  const labels = parseName(text);
  return labels && normalizeName(nameText(labels));
}

/** Presentation-format text as a wire name (uncompressed, root label included). Throws RangeError if it is not a name. */
export function encodeName(text: string): Buffer {
  const labels = parseName(text);
  if (!labels) throw new RangeError(`not a DNS name: ${JSON.stringify(text)}`);
  return Buffer.concat([...labels.flatMap((l) => [Buffer.from([l.length]), l]), Buffer.from([0])]);
}
