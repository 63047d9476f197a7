// Parsing a manifest file into validated objects, and doing it again after
// an edit at the cost of what the edit changed. The yaml parser costs
// ~0.2 ms a document: re-parsing a 2,500-document file for a one-line edit
// would take half a second. So each document's text is remembered with the
// objects it parsed to, and an edit re-parses only documents whose text is
// new. Whenever the fast path is not certain to agree with parsing the whole
// file (directives, document-end markers, any error), the whole file is
// parsed as before, so results and error messages stay exactly the same.
// A document parsed anew is read by the plain-YAML fast path when it can
// be (plain-yaml.ts: block and one-line flow collections, simple scalars),
// by the yaml package otherwise.
import { parseAllDocuments } from 'yaml';
import { objectKey, type KubeObject } from '../store/index.js';
import { parsePlainDocument } from './plain-yaml.js';
import { isSupportedKind, validateObject, ValidationError } from './validate.js';

/**
 * The whole file, in one parse: the reference behaviour. `skipOtherKinds`:
 * objects of kinds Sluice does not read (a Deployment, an Assertions file)
 * are left out instead of rejecting the file — for reading a policy
 * repository offline; the agent's directory stays strict.
 */
export function parseManifest(text: string, file: string, opts: { skipOtherKinds?: boolean } = {}): KubeObject[] {
  const docs = parseAllDocuments(text, { prettyErrors: true });
  const objects: KubeObject[] = [];
  docs.forEach((doc, i) => {
    const where = `${file}#${i + 1}`;
    if (doc.errors.length) throw new ValidationError(`${where}: ${doc.errors[0]!.message}`);
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return; // empty document
    const items = (value as { kind?: unknown }).kind === 'List' ? ((value as { items?: unknown[] }).items ?? []) : [value];
    for (const item of items) {
      if (opts.skipOtherKinds && !isSupportedKind((item as { kind?: unknown } | null)?.kind)) continue;
      objects.push(validateObject(item, where));
    }
  });
  checkUnique(objects, file);
  return objects;
}

function checkUnique(objects: readonly KubeObject[], file: string): void {
  const seen = new Set<string>();
  for (const o of objects) {
    const key = `${o.kind}/${objectKey(o)}`;
    if (seen.has(key)) throw new ValidationError(`${file}: ${key} is defined twice`);
    seen.add(key);
  }
}

/** A document start marker: `---` at column 0, alone or followed by whitespace (YAML forbids it inside content). */
const DOC_START = /^---(?:\s|$)/;
/** What the fast path does not handle: directives and document-end markers. */
const NOT_PLAIN = /^(?:%|\.\.\.(?:\s|$))/m;

/** The file's text cut before each document start marker; undefined if it is not that simple. */
export function splitDocuments(text: string): string[] | undefined {
  if (NOT_PLAIN.test(text)) return undefined;
  const chunks: string[] = [];
  let start = 0;
  let at = 0;
  while (at <= text.length) {
    const nl = text.indexOf('\n', at);
    const end = nl < 0 ? text.length : nl;
    if (at > start && DOC_START.test(text.slice(at, Math.min(end + 1, at + 4)))) {
      chunks.push(text.slice(start, at));
      start = at;
    }
    if (nl < 0) break;
    at = nl + 1;
  }
  chunks.push(text.slice(start));
  return chunks;
}

/**
 * One document's objects, or undefined if it has any error (the whole-file
 * parse then says which). Plain YAML is read by the fast path
 * (plain-yaml.ts); whatever it is not certain about goes to the yaml package.
 */
function parseDocument(chunk: string): KubeObject[] | undefined {
  try {
    const plain = parsePlainDocument(chunk);
    const values = plain !== undefined ? [plain] : yamlValues(chunk);
    if (!values) return undefined;
    const objects: KubeObject[] = [];
    for (const value of values) {
      if (value === null || value === undefined) continue;
      const items = (value as { kind?: unknown }).kind === 'List' ? ((value as { items?: unknown[] }).items ?? []) : [value];
      for (const item of items) objects.push(validateObject(item, 'document'));
    }
    return objects;
  } catch {
    return undefined;
  }
}

/** The chunk's documents' values by the yaml package; undefined if any has an error. */
function yamlValues(chunk: string): unknown[] | undefined {
  const values: unknown[] = [];
  for (const doc of parseAllDocuments(chunk, { prettyErrors: true })) {
    if (doc.errors.length) return undefined;
    values.push(doc.toJS({ maxAliasCount: 100 }));
  }
  return values;
}

/**
 * Parses successive versions of one file, re-parsing only documents whose
 * text changed. Objects of an unchanged document are the very same objects
 * as before (so a diff against them is a pointer comparison).
 */
export class ManifestParser {
  /** Each document's text → its objects, from the last parse of this file. */
  #docs = new Map<string, KubeObject[]>();

  parse(text: string, file: string): KubeObject[] {
    const steps = this.#steps(text, file);
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
    }
  }

  /**
   * parse(), giving the event loop a turn every `sliceMs` of parsing: a
   * large file's first load must not hold up the thread the DNS proxy
   * answers on for the whole parse. The result is the same.
   */
  async parseYielding(text: string, file: string, sliceMs = 5): Promise<KubeObject[]> {
    const steps = this.#steps(text, file);
    let since = performance.now();
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
      if (performance.now() - since >= sliceMs) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        since = performance.now();
      }
    }
  }

  /** The parse, pausing (yield) after each document it had to parse anew. */
  *#steps(text: string, file: string): Generator<void, KubeObject[]> {
    const chunks = splitDocuments(text);
    if (!chunks) return this.#whole(text, file);
    const next = new Map<string, KubeObject[]>();
    const objects: KubeObject[] = [];
    for (const chunk of chunks) {
      let objs = next.get(chunk) ?? this.#docs.get(chunk);
      if (!objs) {
        objs = parseDocument(chunk);
        if (!objs) return this.#whole(text, file);
        yield;
      }
      next.set(chunk, objs);
      objects.push(...objs);
    }
    checkUnique(objects, file);
    this.#docs = next;
    return objects;
  }

  /** The reference path: its result, or its exact error. */
  #whole(text: string, file: string): KubeObject[] {
    this.#docs = new Map();
    return parseManifest(text, file);
  }
}
