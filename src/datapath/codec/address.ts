// IP addresses as the datapath stores them: 16 bytes, IPv4 in the first 4. The conversion is
// src/net's (one parser for the project); these are the names the codecs use.
export { addressFromBytes as formatAddress, addressToBytes as parseAddressInto } from '../../net/index.js';
