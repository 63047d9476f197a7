// Kubernetes label selectors: matchLabels AND matchExpressions
// (In, NotIn, Exists, DoesNotExist). An empty selector matches everything.
import { isObject, PolicyError } from './errors.js';

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export type Labels = Readonly<Record<string, string>>;

export function matches(sel: LabelSelector, labels: Labels): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    switch (e.operator) {
      case 'In':
        if (!has || !(e.values ?? []).includes(labels[e.key]!)) return false;
        break;
      case 'NotIn':
        if (has && (e.values ?? []).includes(labels[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function validLabelKey(k: string): boolean {
  const slash = k.lastIndexOf('/');
  const prefix = slash >= 0 ? k.slice(0, slash) : undefined;
  const name = slash >= 0 ? k.slice(slash + 1) : k;
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

export function validLabelValue(v: unknown): v is string {
  return typeof v === 'string' && v.length <= 63 && LABEL_VALUE.test(v);
}

/** Validates a selector as the API server does; returns it typed. */
export function parseSelector(raw: unknown, where: string): LabelSelector {
  if (!isObject(raw)) throw new PolicyError(`${where} must be an object`);
  const out: LabelSelector = {};
  if (raw.matchLabels !== undefined && raw.matchLabels !== null) {
    if (!isObject(raw.matchLabels)) throw new PolicyError(`${where}.matchLabels must be a map`);
    for (const [k, v] of Object.entries(raw.matchLabels)) {
      if (!validLabelKey(k)) throw new PolicyError(`${where}.matchLabels: invalid key ${JSON.stringify(k)}`);
      if (!validLabelValue(v)) throw new PolicyError(`${where}.matchLabels[${JSON.stringify(k)}]: invalid value ${JSON.stringify(v)}`);
    }
    out.matchLabels = raw.matchLabels as Record<string, string>;
  }
  if (raw.matchExpressions !== undefined && raw.matchExpressions !== null) {
    if (!Array.isArray(raw.matchExpressions)) throw new PolicyError(`${where}.matchExpressions must be a list`);
    out.matchExpressions = raw.matchExpressions.map((e: unknown, i: number) => {
      const at = `${where}.matchExpressions[${i}]`;
      if (!isObject(e)) throw new PolicyError(`${at} must be an object`);
      if (typeof e.key !== 'string' || !validLabelKey(e.key)) throw new PolicyError(`${at}.key is not a valid label key`);
      const op = e.operator;
      if (op !== 'In' && op !== 'NotIn' && op !== 'Exists' && op !== 'DoesNotExist') {
        throw new PolicyError(`${at}.operator ${JSON.stringify(op)} is not one of In, NotIn, Exists, DoesNotExist`);
      }
      const values = e.values ?? [];
      if (!Array.isArray(values)) throw new PolicyError(`${at}.values must be a list`);
      if ((op === 'In' || op === 'NotIn') && values.length === 0) throw new PolicyError(`${at}: ${op} needs at least one value`);
      if ((op === 'Exists' || op === 'DoesNotExist') && values.length > 0) throw new PolicyError(`${at}: ${op} takes no values`);
      for (const v of values) if (!validLabelValue(v)) throw new PolicyError(`${at}.values: invalid value ${JSON.stringify(v)}`);
      return { key: e.key, operator: op, values: values as string[] };
    });
  }
  return out;
}
