/* Verdict reasons, one flat numbered list.
 *
 * 0 is "forwarded"; every drop has its own number starting at 130 so that a
 * reason can never be mistaken for a tc action code (TC_ACT_* is -1..8).
 * Numbers fit in a __u8 (the metrics key and flow events carry them as one).
 *
 * Shared with src/datapath/drop-reasons.ts: change both together (a test
 * parses this file and compares). A retired number stays as
 * SLUICE_DROP_UNUSEDn and is never reused, so old flow logs keep meaning. */
#ifndef SLUICE_SHARED_DROP_REASONS_H
#define SLUICE_SHARED_DROP_REASONS_H

#define SLUICE_REASON_FORWARDED        0
#define SLUICE_DROP_NO_ENDPOINT        130 /* packet on a veth the agent has not programmed */
#define SLUICE_DROP_POLICY_DENIED      131 /* policy denies this flow */
#define SLUICE_DROP_ENDPOINT_DISABLED  132 /* endpoint set to drop everything */
#define SLUICE_DROP_NO_FQDN_ALLOW      133 /* destination not (yet) learned from DNS */
#define SLUICE_DROP_FQDN_EXPIRED       134 /* learned IP's lifetime ran out */
#define SLUICE_DROP_MAP_FULL           135 /* a map insert failed: fail closed */
#define SLUICE_DROP_UNSUPPORTED_L3     136 /* neither IPv4, IPv6 nor ARP */
#define SLUICE_DROP_INVALID_PACKET     137 /* truncated or malformed headers */
#define SLUICE_DROP_INTERNAL           138 /* a should-not-happen path: fail closed */
#define SLUICE_DROP_POLICY_FAILED      139 /* the agent could not program this endpoint's policy */
#define SLUICE_DROP_DNS_PROXY_DOWN     140 /* intercepted DNS while the proxy does not answer: the client retries */
#define SLUICE_DROP_DNS_NO_NAT         141 /* a reply from the DNS proxy to a query it was never sent */
#define SLUICE_DROP_SPOOFED_SOURCE     142 /* a pod sent with a source address that is not its own */
#define SLUICE_DROP_DNS_RATE_LIMITED   143 /* the pod's DNS query budget (--dns-pod-qps) is spent */
#define SLUICE_DROP_FRAG_NOT_FOUND     144 /* a non-first fragment whose first fragment was not allowed here */
#define SLUICE_DROP_BAD_FRAGMENT       145 /* a fragment that splits or overlaps the L4 header, or fragmented DNS */

#endif
