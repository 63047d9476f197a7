/* Fixed-width types for the structs shared between eBPF and user space.
 * In eBPF objects they come from vmlinux.h; in user-space C (the layout test)
 * from the kernel UAPI headers. */
#ifndef SLUICE_SHARED_TYPES_H
#define SLUICE_SHARED_TYPES_H
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#endif
