// IP addresses and CIDRs, for both families: the one place the project does address math. IPAM,
// the policy validator and compiler, and the datapath codecs all import it from here.
export { bits, canonicalIp, familyOf, formatIp, parseIp } from './address.js';
export type { Address, Family } from './address.js';
export { addressFromBytes, addressToBytes, ipv4Number, ipv4Text, Ipv4Texts } from './bytes.js';
export { cidrContains, cidrSize, cidrWithin, hostCidr, parseCidr } from './cidr.js';
export type { Cidr } from './cidr.js';
export { CidrError } from './errors.js';
