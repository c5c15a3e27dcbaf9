/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the host is: CPU, memory, OS, uptime, read from /proc, uname and
 * os-release (what cannot change while vmhostd runs only once, the
 * available memory at most once a second). */
#ifndef VMHOST_CORE_HOSTINFO_H
#define VMHOST_CORE_HOSTINFO_H

#include <vmhost/types.h>

/* Fill *ret for the duration of fn(opaque, ret) (strings live on the
 * stack of this call). */
void hostinfo_read(void (*fn)(void *opaque, const struct vmh_host_info *h),
                   void *opaque);

#endif
