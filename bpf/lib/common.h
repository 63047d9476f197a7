/* Constants vmlinux.h does not carry (they are macros in the UAPI headers). */
#ifndef SLUICE_LIB_COMMON_H
#define SLUICE_LIB_COMMON_H

#define TC_ACT_UNSPEC (-1)
#define TC_ACT_OK   0
#define TC_ACT_SHOT 2

#define ETH_HLEN     14
#define ETH_P_IP     0x0800
#define ETH_P_ARP    0x0806
#define ETH_P_IPV6   0x86DD

#ifndef IPPROTO_TCP
#define IPPROTO_TCP  6
#define IPPROTO_UDP  17
#define IPPROTO_SCTP 132
#endif

#endif
