// The answer of `sluice explain` (and of the agent's `explain` method, and
// each line of `sluice test`): the verdict, the policies deciding it and why,
// down to the rules the datapath would match, per direction and per address.
import type { RuleRef } from '../policy/index.js';

export type Verdict = 'allow' | 'deny';

/** A flow to explain, as written: a pod NS/NAME or an IP; a pod, an IP or a DNS name; NUMBER[/PROTOCOL] or a port name. */
export interface ExplainQuery {
  from: string;
  to: string;
  port: string;
}

/** What audit-mode policies alone would have dropped: it passes, and the datapath reports it as `audit`. */
export interface AuditNote {
  reason: string;
  /** The audit-mode policies, "NS/NAME". */
  policies: string[];
}

/** One enforcement point: the source pod's egress, or the destination pod's ingress. */
export interface ExplainStep {
  direction: 'egress' | 'ingress';
  /** The pod whose veth judges it, "NS/NAME". */
  pod: string;
  /** audit: an audit-mode policy would deny it, so it passes. */
  outcome: 'allow' | 'deny' | 'audit';
  /** The policies deciding this direction ("NS/NAME", "FQDNPolicy NS/NAME"); empty when nothing isolates it. */
  isolatedBy: string[];
  /** The rules whose datapath entries allow it. */
  rules: RuleRef[];
  text: string;
}

/** The flow between one pair of addresses (one per family a pod has), or to a name as such. */
export interface ExplainPath {
  /** The addresses judged; absent when unknown (a pod without addresses in the manifests). */
  source?: string;
  destination?: string;
  verdict: Verdict;
  reason: string;
  /** The deciding policies, "NS/NAME": those allowing, or those isolating the denying direction. */
  rules: string[];
  audit?: AuditNote;
  steps: ExplainStep[];
}

export interface Explanation {
  from: string;
  to: string;
  port: string;
  /** The port judged, NUMBER/PROTOCOL: a named port resolved on the destination pod. */
  judged: string;
  verdict: Verdict;
  reason: string;
  rules: string[];
  audit?: AuditNote;
  paths: ExplainPath[];
  /** A DNS name, live: the addresses the DNS proxy has learned for it, with the time each has left. */
  learned?: Array<{ ip: string; expiresInMs: number }>;
}
