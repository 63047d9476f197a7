export { Ipam, IpamError } from './ipam.js';
export type { Allocation, Owner } from './ipam.js';
