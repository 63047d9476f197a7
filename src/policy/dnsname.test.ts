import { describe, expect, it } from 'vitest';
import { canonicalName, encodeName, escapeLabel, MAX_LABEL_BYTES, nameText, normalizeName, parseName } from './dnsname.js';

const bytes = (s: string) => Buffer.from(s, 'latin1');

describe('escapeLabel', () => {
  it.each<[string, Buffer, string]>([
    ['a plain label as it is', bytes('api-v2_x'), 'api-v2_x'],
    ['case kept', bytes('GitHub'), 'GitHub'],
    ['a dot', bytes('dot.example'), 'dot\\.example'],
    ['a backslash', bytes('a\\b'), 'a\\\\b'],
    ["dig's other specials", bytes('"();@$'), '\\"\\(\\)\\;\\@\\$'],
    ['space, control bytes and DEL', Buffer.from([0x20, 0x00, 0x09, 0x7f]), '\\032\\000\\009\\127'],
    ['bytes beyond ASCII', Buffer.from([0x80, 0xc3, 0xa9, 0xff]), '\\128\\195\\169\\255'],
    ['printable punctuation that needs nothing', bytes('!#%&*+,/:<=>?[]^`{|}~'), '!#%&*+,/:<=>?[]^`{|}~'],
  ])('%s', (_what, label, text) => {
    expect(escapeLabel(label)).toBe(text);
  });

  it('gives every byte value exactly one spelling, and parseName reads each back', () => {
    const seen = new Set<string>();
    for (let b = 0; b < 256; b++) {
      const text = escapeLabel(Buffer.from([b]));
      expect(seen.has(text), `byte ${b}`).toBe(false);
      seen.add(text);
      expect(parseName(text), `byte ${b} as ${text}`).toEqual([Buffer.from([b])]);
    }
  });

  it('escapes from the first odd byte of a label given as a view into a larger buffer', () => {
    const packet = Buffer.from('xxab.cdyy', 'latin1');
    expect(escapeLabel(packet.subarray(2, 7))).toBe('ab\\.cd');
    expect(escapeLabel(packet.subarray(2, 4))).toBe('ab');
  });
});

describe('nameText and parseName', () => {
  it('joins labels with unescaped dots; the root is "."', () => {
    expect(nameText([bytes('dot.example'), bytes('test')])).toBe('dot\\.example.test');
    expect(nameText([bytes('dot'), bytes('example'), bytes('test')])).toBe('dot.example.test');
    expect(nameText([])).toBe('.');
  });

  it('reads labels back, with or without the trailing dot', () => {
    expect(parseName('dot\\.example.test')).toEqual([bytes('dot.example'), bytes('test')]);
    expect(parseName('dot\\.example.test.')).toEqual([bytes('dot.example'), bytes('test')]);
    expect(parseName('a\\.')).toEqual([bytes('a.')]);
    expect(parseName('a\\\\.')).toEqual([bytes('a\\')]);
    expect(parseName('\\065\\x.b')).toEqual([bytes('Ax'), bytes('b')]);
    expect(parseName('é.test')).toEqual([Buffer.from('é', 'utf8'), bytes('test')]);
    expect(parseName('.')).toEqual([]);
    expect(parseName('')).toEqual([]);
  });

  it('round-trips generated labels of every byte', () => {
    let seed = 12345;
    const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    for (let n = 0; n < 500; n++) {
      const labels = Array.from({ length: 1 + (next() % 4) }, () => Buffer.from(Array.from({ length: 1 + (next() % 20) }, () => next() % 256)));
      expect(parseName(nameText(labels))).toEqual(labels);
    }
  });

  it.each([
    ['an empty label', 'a..b'],
    ['a leading dot', '.a'],
    ['a dangling backslash', 'a\\'],
    ['a short \\DDD', 'a\\12'],
    ['\\DDD over 255', 'a\\256'],
    ['a label over 63 bytes', `${'a'.repeat(MAX_LABEL_BYTES + 1)}.test`],
    ['a label over 63 bytes once unescaped', `${'\\000'.repeat(MAX_LABEL_BYTES + 1)}.test`],
    ['a name over 255 bytes on the wire', Array.from({ length: 5 }, () => 'a'.repeat(MAX_LABEL_BYTES)).join('.')],
  ])('rejects %s', (_what, text) => {
    expect(parseName(text)).toBeUndefined();
    expect(canonicalName(text)).toBeUndefined();
    expect(() => encodeName(text)).toThrow(RangeError);
  });

  it('accepts a name of exactly 255 bytes on the wire', () => {
    const longest = [...Array.from({ length: 3 }, () => 'a'.repeat(63)), 'a'.repeat(61)].join('.');
    expect(parseName(longest)).toHaveLength(4);
    expect(encodeName(longest)).toHaveLength(255);
  });
});

describe('canonicalName', () => {
  it('is the text normalizeName gives for a name read off the wire', () => {
    expect(canonicalName('Dot\\.Example.TEST.')).toBe('dot\\.example.test');
    expect(canonicalName('\\065\\x.b')).toBe('ax.b');
    expect(canonicalName('\\100ot\\046example.test')).toBe('dot\\.example.test');
    expect(canonicalName('a\\ b.test')).toBe('a\\032b.test');
    expect(canonicalName('é.test')).toBe('\\195\\169.test');
    expect(canonicalName('.')).toBe('');
  });

  it('is the identity on canonical text', () => {
    for (const n of ['api.github.com', 'dot\\.example.test', 'a\\\\.b', '\\000\\255.x', 'a\\.']) {
      expect(canonicalName(n)).toBe(n);
      expect(normalizeName(n)).toBe(n);
    }
  });
});

describe('encodeName', () => {
  it('writes the labels with their lengths and the root label', () => {
    expect(encodeName('dot\\.example.test')).toEqual(Buffer.from('\x0bdot.example\x04test\x00', 'latin1'));
    expect(encodeName('dot.example.test.')).toEqual(Buffer.from('\x03dot\x07example\x04test\x00', 'latin1'));
    expect(encodeName('.')).toEqual(Buffer.from([0]));
  });
});
