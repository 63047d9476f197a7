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
/** Printable characters that presentation format escapes with a backslash (dig's set). */
const SPECIAL = new Set([DOT, BACKSLASH, 0x22 /* " */, 0x28 /* ( */, 0x29 /* ) */, 0x3b /* ; */, 0x40 /* @ */, 0x24 /* $ */]);

const plain = (b: number): boolean => b > 0x20 && b < 0x7f && !SPECIAL.has(b);

/** One label's bytes in presentation format (case preserved). */
export function escapeLabel(bytes: Uint8Array): string {
  let i = 0;
  while (i < bytes.length && plain(bytes[i]!)) i++;
  // Nearly every label is plain: one latin1 slice, no per-byte string building.
  if (i === bytes.length) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  let out = Buffer.from(bytes.buffer, bytes.byteOffset, i).toString('latin1');
  for (; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (plain(b)) out += String.fromCharCode(b);
    else if (SPECIAL.has(b)) out += `\\${String.fromCharCode(b)}`;
    else out += `\\${String(b).padStart(3, '0')}`;
  }
  return out;
}

/** Labels' bytes as a name in presentation format, without the trailing dot; the root is '.'. */
export function nameText(labels: readonly Uint8Array[]): string {
  return labels.length ? labels.map(escapeLabel).join('.') : '.';
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
