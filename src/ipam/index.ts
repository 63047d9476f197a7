export { Ipam, IpamError } from './ipam.js';
export type { Allocation, Owner } from './ipam.js';
export { cidrContains, CidrError, cidrSize, formatIp, parseCidr, parseIp } from './cidr.js';
export type { Cidr } from './cidr.js';
