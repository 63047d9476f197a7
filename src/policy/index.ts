export { compile, newAllocators, parsePrefix, PROTO_ANY, PROTO_NUMBERS } from './compile.js';
export type { Allocators, CompiledPolicy, EndpointInput, EndpointPolicy, IdentityInfo, NamedPort, PolicyEntry, PolicyInput, RuleRef } from './compile.js';
export { PolicyError } from './errors.js';
export { CIDR_ID_MIN, ID_ANY, ID_HOST, IdentityAllocator, POD_ID_MIN } from './identity.js';
export { parseNetworkPolicy } from './netpol.js';
export type { IpBlock, NetworkPolicy, Peer, PortSpec, Protocol, Rule } from './netpol.js';
export { matches, parseSelector } from './selector.js';
export type { LabelSelector, Labels } from './selector.js';
