/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The iSCSI protocol side of the iscsi storage plugin, over libiscsi's
 * synchronous calls: sessions (discovery or normal, with CHAP), the
 * targets of a portal (SendTargets), the LUNs of a target (REPORT LUNS,
 * INQUIRY with VPD 0x80 and 0x83, READ CAPACITY 16) and zeroing a LUN.
 *
 * Nothing here keeps state or takes a lock: each call works on the one
 * session it is given, and a session is used by one thread at a time.
 * Failures fill the caller's buffer `err` with a message naming the portal
 * and target, and return a VMH_E* code:
 *   VMH_EIO    the portal cannot be reached ("unavailable"), or the
 *              session broke;
 *   VMH_EPERM  the target refused the login (CHAP, ACL);
 *   VMH_ENOMEM out of memory. */
#ifndef VMHOST_ISCSI_SCAN_H
#define VMHOST_ISCSI_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <vmhost/common.h>

struct iscsi_context;

/* Credentials (borrowed); user NULL: no CHAP. */
struct scan_auth {
  const char *user;
  const char *secret;
};

/* A session: logged in to `iqn` on `portal` ("host:port"), or a discovery
 * session when iqn is NULL.  timeout (seconds, > 0) bounds every PDU.
 * Returns 0 and *ret, which scan_close ends. */
int scan_open(const char *initiator, const char *portal, const char *iqn,
              const struct scan_auth *auth, int timeout,
              struct iscsi_context **ret, char *err, size_t errlen);
/* Logs out (best effort) and frees the session; NULL is fine. */
void scan_close(struct iscsi_context *s);

/* The targets a discovery session's portal offers: fn(opaque, iqn) for
 * each, in the order the target sends them; a non-zero return from fn
 * stops the walk and is returned. */
int scan_targets(struct iscsi_context *s, const char *portal,
                 int (*fn)(void *opaque, const char *iqn), void *opaque,
                 char *err, size_t errlen);

/* One LUN (a direct-access device) as the target describes it. */
struct scan_lun {
  char name[VMH_NAME_MAX + 1]; /* from the device identifier (see .c) */
  uint32_t lun;
  uint64_t size;       /* bytes */
  uint32_t block_size; /* bytes */
  char vendor[9];
  char product[17];
  char serial[65]; /* VPD 0x80, blanks trimmed; "" if none */
};

/* The disk LUNs of the target a normal session is logged in to:
 * fn(opaque, lun) for each (valid during the call); a non-zero return
 * from fn stops the walk and is returned.  A LUN without any usable device
 * identifier has no stable name: it is skipped, and *n_skipped counts
 * it. */
int scan_luns(struct iscsi_context *s, const char *portal, const char *iqn,
              int (*fn)(void *opaque, const struct scan_lun *lun), void *opaque,
              uint32_t *n_skipped, char *err, size_t errlen);

/* Writes zeroes over all of `lun` (size bytes in blocks of block_size):
 * WRITE SAME (16) where the LUN takes it, else WRITE (16) of zero
 * buffers. */
int scan_zero(struct iscsi_context *s, const char *what, uint32_t lun,
              uint64_t size, uint32_t block_size, char *err, size_t errlen);

#endif /* VMHOST_ISCSI_SCAN_H */
