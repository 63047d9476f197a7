// The words of a query: a pod NS/NAME, an IP or a DNS name; a port as
// NUMBER[/PROTOCOL] or a port name (resolved on the destination pod). Only
// the form is checked here; whether the pod exists is the world's business.
import { canonicalIp, familyOf } from '../net/index.js';
import { isValidDnsName, normalizeName, type Protocol } from '../policy/index.js';
import { ExplainCode, ExplainError } from './errors.js';

export type Subject = { kind: 'pod'; name: string } | { kind: 'ip'; ip: string } | { kind: 'name'; name: string };

export interface PortQuery {
  /** A number, or undefined for a named port. */
  number?: number;
  /** A port name (IANA_SVC_NAME, as in a container port). */
  name?: string;
  /** Absent: TCP for a number (as in NetworkPolicy), the named port's own for a name. */
  protocol?: Protocol;
}

const POD = /^[^/\s]+\/[^/\s]+$/;
const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const bad = (message: string) => new ExplainError(ExplainCode.BAD_QUERY, message);

/** `from` is a pod or an IP; `to` may also be a DNS name. */
export function parseSubject(text: string, role: 'from' | 'to'): Subject {
  const t = text.trim();
  if (POD.test(t)) return { kind: 'pod', name: t };
  if (familyOf(t)) return { kind: 'ip', ip: canonicalIp(t) };
  if (role === 'to' && isValidDnsName(t)) return { kind: 'name', name: normalizeName(t) };
  throw bad(`${role}: ${JSON.stringify(text)} is not ${role === 'from' ? 'a pod NS/NAME or an IP address' : 'a pod NS/NAME, an IP address or a DNS name'}`);
}

/** "80", "80/TCP", "53/udp", "http", "dns/UDP"; a YAML number is a number. */
export function parsePort(raw: string | number): PortQuery {
  const text = String(raw).trim();
  const slash = text.indexOf('/');
  const head = slash < 0 ? text : text.slice(0, slash);
  const protoText = slash < 0 ? undefined : text.slice(slash + 1).toUpperCase();
  const protocol = PROTOCOLS.find((p) => p === protoText);
  if (protoText !== undefined && !protocol) throw bad(`port: ${JSON.stringify(text)}: the protocol must be TCP, UDP or SCTP`);
  if (/^\d+$/.test(head)) {
    const number = Number(head);
    if (number < 1 || number > 65535) throw bad(`port: ${JSON.stringify(text)}: the port must be 1-65535`);
    return { number, ...(protocol ? { protocol } : {}) };
  }
  if (head.length <= 15 && PORT_NAME.test(head) && /[a-z]/.test(head)) return { name: head, ...(protocol ? { protocol } : {}) };
  throw bad(`port: ${JSON.stringify(text)} is not NUMBER/TCP|UDP|SCTP nor a port name`);
}
