// The assertions file of `sluice test` (PRODUCT.md §7), one or more YAML
// documents each:
//
//   apiVersion: sluice.dev/v1alpha1
//   kind: Assertions
//   assertions:
//   - { from: x/a, to: y/b, port: 80/TCP, expect: allow }
//
// Checked whole before anything is judged, strictly (an unknown field is an
// error, not an assertion that silently checks less), each error naming the
// file, the document and the assertion.
import { parseAllDocuments } from 'yaml';
import { isObject } from '../policy/index.js';
import { ExplainCode, ExplainError } from './errors.js';
import { parsePort, parseSubject } from './query.js';
import type { Verdict } from './types.js';

const ASSERTIONS_API_VERSION = 'sluice.dev/v1alpha1';
const ASSERTIONS_KIND = 'Assertions';

export interface Assertion {
  /** "FILE#DOCUMENT assertion INDEX" (both 1-based), for messages. */
  where: string;
  from: string;
  to: string;
  /** As written: "80/TCP", "http", or a YAML number. */
  port: string | number;
  expect: Verdict;
}

const DOC_FIELDS = ['apiVersion', 'kind', 'metadata', 'assertions'];
const FIELDS = ['from', 'to', 'port', 'expect'];

const bad = (message: string) => new ExplainError(ExplainCode.BAD_QUERY, message);

function unknownField(raw: Record<string, unknown>, known: readonly string[], where: string): void {
  const extra = Object.keys(raw).find((k) => !known.includes(k));
  if (extra !== undefined) throw bad(`${where}: unknown field ${JSON.stringify(extra)} (allowed: ${known.join(', ')})`);
}

/** The assertions of one file, in document order. Throws ExplainError (BAD_QUERY) on the first problem. */
export function parseAssertions(text: string, file: string): Assertion[] {
  const out: Assertion[] = [];
  parseAllDocuments(text, { prettyErrors: true }).forEach((doc, i) => {
    const where = `${file}#${i + 1}`;
    if (doc.errors.length) throw bad(`${where}: ${doc.errors[0]!.message}`);
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return; // an empty document
    if (!isObject(value)) throw bad(`${where}: not an object`);
    unknownField(value, DOC_FIELDS, where);
    if (value.apiVersion !== ASSERTIONS_API_VERSION || value.kind !== ASSERTIONS_KIND) {
      throw bad(`${where}: expected apiVersion ${ASSERTIONS_API_VERSION} and kind ${ASSERTIONS_KIND}, not ${JSON.stringify(value.apiVersion)} ${JSON.stringify(value.kind)}`);
    }
    if (!Array.isArray(value.assertions)) throw bad(`${where}: assertions must be a list`);
    value.assertions.forEach((raw: unknown, j: number) => out.push(parseAssertion(raw, `${where} assertion ${j + 1}`)));
  });
  return out;
}

function parseAssertion(raw: unknown, where: string): Assertion {
  if (!isObject(raw)) throw bad(`${where}: must be an object with from, to, port and expect`);
  unknownField(raw, FIELDS, where);
  for (const f of FIELDS) if (raw[f] === undefined || raw[f] === null) throw bad(`${where}: ${f} is required`);
  const { from, to, port, expect } = raw;
  if (typeof from !== 'string' || typeof to !== 'string') throw bad(`${where}: from and to must be strings`);
  if (typeof port !== 'string' && typeof port !== 'number') throw bad(`${where}: port must be NUMBER/PROTOCOL or a port name`);
  if (expect !== 'allow' && expect !== 'deny') throw bad(`${where}: expect must be allow or deny, not ${JSON.stringify(expect)}`);
  try {
    parseSubject(from, 'from');
    parseSubject(to, 'to');
    parsePort(port);
  } catch (err) {
    throw bad(`${where}: ${(err as Error).message}`);
  }
  return { where, from, to, port, expect };
}
