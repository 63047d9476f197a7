// sluice.dev/v1alpha1 FQDNPolicy: validation (the same rules the CRD schema in
// deploy/00-crd-fqdnpolicies.yaml states, so a policy is accepted or
// rejected whole in both modes) and DNS name matching (PRODUCT §4).
//
// Matching rules:
// - matchName is exact, case-insensitive, trailing dot optional.
// - In matchPattern, `*` matches zero or more characters inside one label; a
//   label that is only `*` needs at least one character (labels are never
//   empty), so `*.example.com` does not match `example.com` nor
//   `.example.com`.
// - A leading `**.` matches one or more whole labels; `**` anywhere else is
//   invalid.
// - The pattern `*` alone matches every name.
//
// Names are compared label by label (PRODUCT §5). Names from the wire arrive
// in presentation format (dnsname.ts: a dot inside a label is `\.`, other
// odd bytes are escaped), and rule names and patterns are validated to
// letters, digits, '-' and '_', so:
// - an exact name never equals a wire name whose labels hold anything else;
// - a wildcard (`*` inside a label, a leading `**.`) stands only for those
//   characters, so it never reaches into an escape: `*.test` does not match
//   `dot\.example.test` (its first label, "dot.example", holds a dot), nor
//   does `**.example.test` (it has no label "example").
// Only the pattern `*` alone matches names with such labels: it matches
// every name.
import { normalizeName } from './dnsname.js';
import { isObject, PolicyError } from './errors.js';
import type { PortSpec, Protocol } from './netpol.js';
import { parseSelector, type LabelSelector } from './selector.js';

export type DnsMode = 'AllowAll' | 'MatchedOnly';

export interface NameSelector {
  kind: 'name' | 'pattern';
  /** normalized: lower case, no trailing dot */
  text: string;
}

/** A port of an FQDN rule: always numeric, a port name has no pod to resolve on. */
export type FqdnPort = PortSpec & { port: number };

export interface FqdnRule {
  selectors: NameSelector[];
  /** undefined = all ports and protocols */
  ports?: FqdnPort[];
}

export interface FqdnPolicy {
  namespace: string;
  name: string;
  podSelector: LabelSelector;
  dns: DnsMode;
  egress: FqdnRule[];
  /** spec.enforcement: Audit — what it alone would drop passes, reported as audit. */
  audit: boolean;
}

const MAX_NAME_LENGTH = 253; // without the trailing dot
const MAX_LABEL_LENGTH = 63;
const NAME_LABEL = /^[A-Za-z0-9_-]+$/;
const PATTERN_LABEL = /^[A-Za-z0-9_*-]+$/;
/** `**` as the whole first label: one or more whole labels. */
const MULTI_LABEL = '**';

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const DNS_MODES: readonly DnsMode[] = ['AllowAll', 'MatchedOnly'];

const present = (v: unknown): boolean => v !== undefined && v !== null;

/** Strict field validation: a typo (`matchname`) must not be silently ignored. */
function rejectUnknownFields(raw: Record<string, unknown>, known: readonly string[], where: string): void {
  for (const key of Object.keys(raw)) {
    if (known.includes(key)) continue;
    const field = /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
    throw new PolicyError(`${where}${field}: unknown field (allowed: ${known.join(', ')})`);
  }
}

export { normalizeName };

/** Why `text` is not a valid name (or pattern); undefined when it is valid. */
function nameProblem(text: string, pattern: boolean): string | undefined {
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  if (name === '') return 'is empty';
  if (name.length > MAX_NAME_LENGTH) return `is ${name.length} characters long; the limit is ${MAX_NAME_LENGTH} (without the trailing dot)`;
  const labels = name.split('.');
  for (const [i, label] of labels.entries()) {
    if (label === '') return 'has an empty label';
    if (label.length > MAX_LABEL_LENGTH) return `has a label longer than ${MAX_LABEL_LENGTH} characters (${JSON.stringify(label.slice(0, 20) + '…')})`;
    if (!(pattern ? PATTERN_LABEL : NAME_LABEL).test(label)) {
      if (!pattern && label.includes('*')) return `contains '*'; wildcards are only allowed in matchPattern`;
      return `has a label with characters other than letters, digits, '-', '_'${pattern ? " and '*'" : ''} (${JSON.stringify(label)})`;
    }
    if (pattern && label.includes(MULTI_LABEL) && !(i === 0 && label === MULTI_LABEL && labels.length > 1)) {
      return `uses '**' other than as a whole leading label (as in "**.example.com")`;
    }
  }
  return undefined;
}

/** Throws PolicyError unless `name` is a valid DNS name (any case, trailing dot optional). */
export function validateDnsName(name: string, where = 'DNS name'): void {
  const problem = typeof name === 'string' ? nameProblem(name, false) : 'is not a string';
  if (problem !== undefined) throw new PolicyError(`${where}: ${JSON.stringify(name)} ${problem}`);
}

/**
 * The non-throwing check for names arriving from the wire: letters, digits,
 * '-', '_', labels 1-63 characters, at most 253 characters (without the
 * trailing dot). The root name ("." or "") is not valid.
 */
export function isValidDnsName(name: string): boolean {
  return typeof name === 'string' && nameProblem(name, false) === undefined;
}

function validatePattern(pattern: string, where: string): void {
  const problem = nameProblem(pattern, true);
  if (problem !== undefined) throw new PolicyError(`${where}: ${JSON.stringify(pattern)} ${problem}`);
}

/**
 * What a wildcard stands for: a character a rule could name (after
 * normalizeName). Not '.' and not a backslash, so no wildcard reaches across an
 * escaped dot into the next label, nor into any escape.
 */
const NAME_CHAR = '[a-z0-9_-]';

/** Regular expression source (unanchored) for a valid, normalized pattern other than `*`. */
function patternSource(pattern: string): string {
  const labels = pattern.split('.');
  let prefix = '';
  if (labels[0] === MULTI_LABEL) {
    labels.shift();
    prefix = `(?:${NAME_CHAR}+\\.)+`;
  }
  const body = labels.map((label) => {
    // A label that is only `*` must still be a non-empty label.
    if (label === '*') return `${NAME_CHAR}+`;
    // Only [a-z0-9_-] and `*` remain after validation: nothing to escape.
    return label.replaceAll('*', `${NAME_CHAR}*`);
  });
  return prefix + body.join('\\.');
}

/**
 * Precompiled matcher over a set of selectors, for repeated use per DNS
 * answer: exact names (and wildcard-free patterns) go in a Set, the other
 * patterns into one anchored alternation. `name` is in presentation format
 * (dnsname.ts), as message.ts reads names off the wire; it needs no other
 * validation: a label no rule could name matches only the pattern `*`.
 */
export class NameMatcher {
  readonly #all: boolean;
  readonly #exact = new Set<string>();
  readonly #patterns: RegExp | undefined;

  constructor(selectors: readonly NameSelector[]) {
    const sources: string[] = [];
    let all = false;
    for (const sel of selectors) {
      const text = normalizeName(sel.text);
      if (sel.kind === 'name') {
        this.#exact.add(text);
        continue;
      }
      validatePattern(text, 'matchPattern');
      if (text === '*') all = true;
      else if (!text.includes('*')) this.#exact.add(text);
      else sources.push(patternSource(text));
    }
    this.#all = all;
    this.#patterns = sources.length ? new RegExp(`^(?:${sources.join('|')})$`) : undefined;
  }

  matches(name: string): boolean {
    if (this.#all) return true;
    const n = normalizeName(name);
    return this.#exact.has(n) || (this.#patterns?.test(n) ?? false);
  }
}

/** One selector against one name (any case, trailing dot optional). */
export function selectorMatches(sel: NameSelector, name: string): boolean {
  return new NameMatcher([sel]).matches(name);
}

function parseNameSelector(raw: unknown, where: string): NameSelector {
  if (!isObject(raw)) throw new PolicyError(`${where} must be an object with matchName or matchPattern`);
  rejectUnknownFields(raw, ['matchName', 'matchPattern'], where);
  const hasName = present(raw.matchName);
  const hasPattern = present(raw.matchPattern);
  if (hasName && hasPattern) throw new PolicyError(`${where}: set exactly one of matchName and matchPattern, not both`);
  if (!hasName && !hasPattern) throw new PolicyError(`${where}: set exactly one of matchName and matchPattern`);
  const field = hasName ? 'matchName' : 'matchPattern';
  const text = raw[field];
  if (typeof text !== 'string') throw new PolicyError(`${where}.${field} must be a string`);
  if (hasName) validateDnsName(text, `${where}.${field}`);
  else validatePattern(text, `${where}.${field}`);
  return { kind: hasName ? 'name' : 'pattern', text: normalizeName(text) };
}

function parsePortNumber(raw: unknown, where: string): number {
  if (typeof raw === 'string') {
    throw new PolicyError(
      /^\d+$/.test(raw)
        ? `${where} must be an integer, not the string ${JSON.stringify(raw)}`
        : `${where}: named ports (${JSON.stringify(raw)}) are not allowed in an FQDNPolicy: there is no destination pod to resolve a port name on; use a number 1-65535`,
    );
  }
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 1 || raw > 65535) throw new PolicyError(`${where} must be an integer 1-65535`);
  return raw;
}

function parsePort(raw: unknown, where: string): FqdnPort {
  if (!isObject(raw)) throw new PolicyError(`${where} must be an object`);
  rejectUnknownFields(raw, ['port', 'protocol', 'endPort'], where);
  const protocol = (raw.protocol ?? 'TCP') as Protocol;
  if (!PROTOCOLS.includes(protocol)) throw new PolicyError(`${where}.protocol must be TCP, UDP or SCTP, not ${JSON.stringify(raw.protocol)}`);
  if (!present(raw.port)) throw new PolicyError(`${where}.port is required (an FQDN rule port is a number 1-65535)`);
  const port = parsePortNumber(raw.port, `${where}.port`);
  const out: FqdnPort = { protocol, port };
  if (present(raw.endPort)) {
    const endPort = raw.endPort;
    if (typeof endPort !== 'number' || !Number.isInteger(endPort) || endPort < port || endPort > 65535) {
      throw new PolicyError(`${where}.endPort must be an integer from port (${port}) to 65535`);
    }
    out.endPort = endPort;
  }
  return out;
}

function parseRule(raw: unknown, where: string): FqdnRule {
  if (!isObject(raw)) throw new PolicyError(`${where} must be an object`);
  rejectUnknownFields(raw, ['toFQDNs', 'ports'], where);
  const to = raw.toFQDNs;
  if (!present(to)) throw new PolicyError(`${where}.toFQDNs is required (a non-empty list of matchName/matchPattern)`);
  if (!Array.isArray(to)) throw new PolicyError(`${where}.toFQDNs must be a list`);
  if (to.length === 0) throw new PolicyError(`${where}.toFQDNs must not be empty`);
  const rule: FqdnRule = { selectors: to.map((s: unknown, j: number) => parseNameSelector(s, `${where}.toFQDNs[${j}]`)) };
  if (present(raw.ports)) {
    if (!Array.isArray(raw.ports)) throw new PolicyError(`${where}.ports must be a list`);
    // Empty = every port and protocol, as in NetworkPolicy.
    if (raw.ports.length) rule.ports = raw.ports.map((p: unknown, j: number) => parsePort(p, `${where}.ports[${j}]`));
  }
  return rule;
}

/** Validates and defaults one FQDNPolicy object (as stored). Throws PolicyError naming the field. */
export function parseFqdnPolicy(obj: { metadata: { name: string; namespace?: string }; spec?: unknown }): FqdnPolicy {
  const namespace = obj.metadata.namespace ?? 'default';
  const where = `FQDNPolicy ${namespace}/${obj.metadata.name}`;
  const spec = obj.spec;
  if (!isObject(spec)) throw new PolicyError(`${where}: spec is required`);
  rejectUnknownFields(spec, ['podSelector', 'dns', 'egress', 'enforcement'], `${where}: spec`);
  const enforcement = spec.enforcement ?? 'Enforce';
  if (enforcement !== 'Enforce' && enforcement !== 'Audit') throw new PolicyError(`${where}: spec.enforcement must be Enforce or Audit, not ${JSON.stringify(spec.enforcement)}`);
  if (!present(spec.podSelector)) throw new PolicyError(`${where}: spec.podSelector is required ({} selects every pod)`);
  const podSelector = parseSelector(spec.podSelector, `${where}: spec.podSelector`);
  const dns = (spec.dns ?? 'AllowAll') as DnsMode;
  if (!DNS_MODES.includes(dns)) throw new PolicyError(`${where}: spec.dns must be AllowAll or MatchedOnly, not ${JSON.stringify(spec.dns)}`);
  let egress: FqdnRule[] = [];
  if (present(spec.egress)) {
    if (!Array.isArray(spec.egress)) throw new PolicyError(`${where}: spec.egress must be a list`);
    egress = spec.egress.map((r: unknown, i: number) => parseRule(r, `${where}: spec.egress[${i}]`));
  }
  return { namespace, name: obj.metadata.name, podSelector, dns, egress, audit: enforcement === 'Audit' };
}
