// Mirror of bpf/shared/dns.h: where intercepted DNS goes. A test compares.
export const DNS_PORT = 53;
export const PROXY_PORT = 9953;
export const PROXY_V4 = '169.254.20.53';
export const PROXY_V6 = 'fd5c:1ce::53';
