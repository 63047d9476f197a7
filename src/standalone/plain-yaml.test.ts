import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parsePlainDocument } from './plain-yaml.js';

/** What the yaml package makes of one document (as manifest.ts reads it), or that it has an error. */
function reference(chunk: string): unknown {
  const docs = parseAllDocuments(chunk, { prettyErrors: true });
  if (docs.length > 1) throw new Error('one document per case');
  if (!docs.length) return null;
  if (docs[0]!.errors.length) return { error: docs[0]!.errors[0]!.message };
  return docs[0]!.toJS({ maxAliasCount: 100 });
}

/** The fast path either agrees with yaml exactly or says it is not certain. */
function agrees(chunk: string): boolean {
  const fast = parsePlainDocument(chunk);
  if (fast === undefined) return false;
  expect(fast).toStrictEqual(reference(chunk));
  return true;
}

const netpol = [
  'apiVersion: networking.k8s.io/v1',
  'kind: NetworkPolicy',
  'metadata:',
  '  name: web',
  '  namespace: x',
  '  labels: {app: web, tier: "front"}',
  'spec:',
  '  podSelector: {matchLabels: {role: server}}',
  '  policyTypes: [Ingress, Egress]',
  '  ingress:',
  '  - from: [{ipBlock: {cidr: 10.100.0.1/32, except: []}}]',
  '    ports: [{protocol: TCP, port: 8000, endPort: 8009}]',
  '  - from:',
  '    - namespaceSelector: {matchLabels: {team: bench}}',
  '      podSelector:',
  '        matchLabels:',
  '          role: client',
  '    ports:',
  '      - protocol: UDP',
  '        port: 53',
  '  egress:',
  '  -',
  '    to: []',
  '  - {}',
  '',
].join('\n');

describe('parsePlainDocument', () => {
  it.each([
    ['a NetworkPolicy in block and flow style', netpol],
    ['after a document marker, with comments and blank lines', `---  \n# head\n\n${netpol}  # not a trailing comment: a line of its own\n`.replace('  # not', '\n  # not')],
    ['a Pod with quoted strings', "apiVersion: v1\nkind: Pod\nmetadata: { name: 'a', namespace: x }\nspec:\n  containers:\n  - name: c\n    image: nginx:1.25\n    args: ['a b', \"c\"]\n"],
    ['nested sequences under keys at the same indent', 'a:\n- b:\n  - 1\n  - c\n  d: 2\n- e\n'],
    ['a key with nothing after it, at each level', 'a:\nb:\n  c:\n  d: x\ne: [ ]\nf: { }\n'],
    ['a sequence item with nothing after it', '- \n- a\n-\n  b: 1\n'],
    ['an empty document', '---\n# nothing\n'],
    ['core-schema words and ints', 'a: true\nb: False\nc: NULL\nd: 0\ne: 8080\nf: yes\ng: on\nh: 100Mi\nj: 1:30\nk: 2001:db8::/64\nl: [true, null, 7, x]\n'],
    ['spaces inside plain scalars', 'a: b  c\nb: {c: d e, f: g}\nc: [x y, z]\n'],
    ['a root sequence and a root at an indent', '  a: 1\n  b: 2\n'],
  ])('agrees with the yaml package: %s', (_what, chunk) => {
    expect(agrees(chunk)).toBe(true);
  });

  it.each([
    ['an anchor and an alias', 'a: &x 1\nb: *x\n'],
    ['a tag', 'a: !!str 1\n'],
    ['a block scalar', 'a: |\n  text\n'],
    ['a trailing comment', 'a: 1 # one\n'],
    ['a multi-line plain scalar', 'a: b\n  c\n'],
    ['a multi-line flow collection', 'a: [1,\n  2]\n'],
    ['a tab', 'a:\tb\n'],
    ['CRLF', 'a: b\r\n'],
    ['an escape', 'a: "b\\n"\n'],
    ['non-ASCII', 'a: é\n'],
    ['content on the marker line', '--- {a: 1}\n'],
    ['a duplicate key', 'a: 1\na: 2\n'],
    ['a duplicate flow key', 'a: {b: 1, b: 2}\n'],
    ['a non-string key', 'true: 1\n'],
    ['an int key', '80: http\n'],
    ['a numeric-looking scalar', 'a: 1e3\n'],
    ['a float', 'a: 1.5\n'],
    ['a leading zero', 'a: 0755\n'],
    ['a hex int', 'a: 0x1f\n'],
    ['.inf', 'a: .inf\n'],
    ['a negative number', 'a: -1\n'],
    ['a huge int', 'a: 12345678901234567890\n'],
    ['~', 'a: ~\n'],
    ['a nested compact mapping (an error)', 'a: b: c\n'],
    ['inconsistent indentation (an error)', 'a:\n    b: 1\n  c: 2\n'],
    ['a sequence after a scalar value (an error)', 'a: 1\n- b\n'],
    ['a pair in a flow sequence', 'a: [b: c]\n'],
    ['a trailing comma', 'a: [1, 2, ]\n'],
    ['an unclosed flow collection', 'a: [1, 2\n'],
    ['text after a flow collection', 'a: [1] x\n'],
    ['a key without a space after the colon in a flow mapping', 'a: {b:c}\n'],
    ['a quoted key', '"a": 1\n'],
    ['__proto__', '__proto__: 1\n'],
    ['a document end marker', 'a: 1\n...\n'],
  ])('is not certain about %s (the yaml package decides)', (_what, chunk) => {
    expect(parsePlainDocument(chunk)).toBeUndefined();
  });

  it('never disagrees with the yaml package on scalars it takes', () => {
    // Every scalar here, in block and flow position: the fast path either
    // gives exactly the yaml package's value or steps aside.
    const scalars = [
      'a', 'A1', 'x_y', 'a.b', 'a/b', '/p', 'a-b', 'a:b', 'a,b', 'a]b', 'a"b', "it's", '0', '1', '01', '10', '99999', '123456789012345', '1234567890123456',
      '1.0', '1.', '1e5', '1E-5', '1_0', '0o17', '0x1F', '0b1', '1-2', '2024-01-01', '10.0.0.0/8', '10.1.2.3', '1:30', '100Mi', '8Gi', '3s', '1h30m',
      'null', 'Null', 'NULL', 'nULL', 'true', 'True', 'TRUE', 'tRUE', 'false', 'False', 'FALSE', 'yes', 'no', 'on', 'off', 'y', 'n', 'nan', 'NaN', 'inf', 'Infinity',
      '.inf', '.NaN', '.5', '~', '-', '-1', '+1', '-a', '_', '__proto__x', 'a b', 'a  b',
    ];
    let taken = 0;
    for (const s of scalars) {
      for (const chunk of [`k: ${s}\n`, `- ${s}\n`, `k: [${s}]\n`, `k: {v: ${s}}\n`, `${s}: v\n`, `k: {${s}: v}\n`, `k: '${s}'\n`, `k: "${s}"\n`]) {
        if (agrees(chunk)) taken++;
      }
    }
    expect(taken).toBeGreaterThan(scalars.length * 3);
  });

  it('never disagrees with the yaml package on generated documents, well-formed or mangled', () => {
    // A seeded generator of documents in block and flow style with varying
    // indentation, then the same texts with a character deleted, duplicated
    // or replaced: whatever the fast path takes must be exactly yaml's
    // value, and a document yaml finds an error in must never be taken.
    let seed = 0x5eed;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pick = <T>(a: readonly T[]): T => a[rnd(a.length)]!;
    // Mostly what the fast path takes, some of what it leaves to yaml.
    const keys = ['a', 'b', 'c', 'name', 'port', 'app.kubernetes.io/name', 'x_1', 'k-2', 'a', 'b', 'true'];
    const scalars = ['web', '8080', '0', 'TCP', '10.0.0.0/8', 'null', 'yes', '"q r"', "'s'", 'a b', 'a:b', '100Mi', 'web', 'x', '1.5', '~'];
    const flowValue = (depth: number): string =>
      depth > 1 || rnd(3) === 0
        ? pick(scalars)
        : rnd(2)
          ? `[${Array.from({ length: rnd(3) }, () => flowValue(depth + 1)).join(', ')}]`
          : `{${Array.from({ length: rnd(3) }, () => `${pick(keys)}: ${flowValue(depth + 1)}`).join(', ')}}`;
    const block = (indent: number, depth: number): string[] => {
      const pad = ' '.repeat(indent);
      const step = 1 + rnd(3);
      const lines: string[] = [];
      const n = 1 + rnd(3);
      const seq = depth > 0 && rnd(3) === 0;
      for (let i = 0; i < n; i++) {
        const head = seq ? `${pad}- ` : `${pad}${pick(keys)}:`;
        const r = depth > 2 ? 0 : rnd(4);
        if (r === 0) lines.push(`${head}${seq ? '' : ' '}${rnd(2) ? pick(scalars) : flowValue(0)}`);
        else if (r === 1 && !seq) lines.push(head, ...block(indent + (rnd(3) ? step : 0), depth + 1)); // a deeper block, or a sequence at the key's indent
        else if (r === 2 && seq) {
          const inner = block(indent + 2, depth + 1);
          lines.push(`${pad}- ${inner[0]!.trimStart()}`, ...inner.slice(1));
        } else lines.push(head, ...block(indent + step, depth + 1));
        if (rnd(8) === 0) lines.push(rnd(2) ? '' : `${pad}# note`);
      }
      return lines;
    };
    let taken = 0;
    let mangledTaken = 0;
    let checked = 0;
    for (let i = 0; i < 400; i++) {
      const text = `${rnd(4) === 0 ? '---\n' : ''}${block(0, 0).join('\n')}\n`;
      const variants = [text];
      for (let m = 0; m < 4; m++) {
        const at = rnd(text.length);
        const c = text[at]!;
        variants.push(pick([text.slice(0, at) + text.slice(at + 1), text.slice(0, at) + c + text.slice(at), text.slice(0, at) + pick([' ', '-', ':', ',', '[', '}', '\n', 'x']) + text.slice(at + 1)]));
      }
      for (const [k, v] of variants.entries()) {
        if (parseAllDocuments(v).length > 1) continue;
        checked++;
        const fast = parsePlainDocument(v);
        if (fast === undefined) continue;
        const ref = reference(v);
        expect(ref, v).not.toHaveProperty('error');
        expect(fast, v).toStrictEqual(ref);
        taken++;
        if (k > 0) mangledTaken++;
      }
    }
    expect(checked).toBeGreaterThan(1500);
    expect(taken).toBeGreaterThan(500);
    expect(mangledTaken).toBeGreaterThan(300); // the mangled texts that are still valid YAML
  });

  it('reads a 2,500-rule policy like the yaml package does', () => {
    const rules: string[] = [];
    for (let i = 0; i < 2500; i++) rules.push(`  - from: [{ipBlock: {cidr: 10.100.${i >> 8}.${i & 255}/32}}]\n    ports: [{protocol: ${i % 10 === 9 ? 'UDP' : 'TCP'}, port: ${8000 + (i % 500)}, endPort: ${8100 + (i % 500)}}]`);
    const chunk = `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: big\n  namespace: x\nspec:\n  podSelector: {}\n  ingress:\n${rules.join('\n')}\n`;
    expect(agrees(chunk)).toBe(true);
  });
});
