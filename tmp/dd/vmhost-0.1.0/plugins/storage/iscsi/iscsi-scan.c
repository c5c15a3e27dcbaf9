/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The iSCSI protocol side of the iscsi storage plugin (iscsi-scan.h). */
#include <config.h>

#include "iscsi-scan.h"

#include "errname.h"

#include <ctype.h>
#include <inttypes.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of one WRITE (16) of zeroes when WRITE SAME is refused. */
#define ZERO_CHUNK (1u << 20)
/* Blocks of one WRITE SAME (16) when the LUN states no limit. */
#define WS_BLOCKS_DEFAULT 65535u

static void task_free(struct scsi_task **t) {
  if (*t)
    scsi_free_scsi_task(*t);
}
#define _cleanup_task_ __attribute__((cleanup(task_free)))

int scan_open(const char *initiator, const char *portal, const char *iqn,
              const struct scan_auth *auth, int timeout,
              struct iscsi_context **ret, char *err, size_t errlen) {
  struct iscsi_context *s = iscsi_create_context(initiator);

  if (s == NULL)
    return errbuf_fail(err, errlen, VMH_ENOMEM, "out of memory");
  iscsi_set_timeout(s, timeout);
  /* A broken session is an answer ("unavailable"), not something to wait
   * out: the caller reconnects on its next refresh. */
  iscsi_set_noautoreconnect(s, 1);
  iscsi_set_header_digest(s, ISCSI_HEADER_DIGEST_NONE_CRC32C);
  if (iscsi_set_session_type(
          s, iqn ? ISCSI_SESSION_NORMAL : ISCSI_SESSION_DISCOVERY) < 0 ||
      (iqn && iscsi_set_targetname(s, iqn) < 0) ||
      (auth && auth->user &&
       iscsi_set_initiator_username_pwd(s, auth->user, auth->secret) < 0)) {
    errbuf_fail(err, errlen, VMH_EINVAL, "portal %s%s%s: %s", portal,
                iqn ? ", target " : "", iqn ? iqn : "", iscsi_get_error(s));
    iscsi_destroy_context(s);
    return VMH_EINVAL;
  }
  if (iscsi_connect_sync(s, portal) < 0) {
    errbuf_fail(err, errlen, VMH_EIO, "portal %s is unavailable: %s", portal,
                iscsi_get_error(s));
    iscsi_destroy_context(s);
    return VMH_EIO;
  }
  if (iscsi_login_sync(s) < 0) {
    errbuf_fail(err, errlen, VMH_EPERM,
                "portal %s: %s%s refused the login (%s)%s", portal,
                iqn ? "target " : "discovery", iqn ? iqn : "",
                iscsi_get_error(s),
                auth && auth->user ? "; check the CHAP user and secret"
                                   : "; does it want CHAP or an ACL entry?");
    iscsi_destroy_context(s);
    return VMH_EPERM;
  }
  *ret = s;
  return 0;
}

void scan_close(struct iscsi_context *s) {
  if (s == NULL)
    return;
  if (iscsi_is_logged_in(s))
    iscsi_logout_sync(s);
  iscsi_destroy_context(s);
}

int scan_targets(struct iscsi_context *s, const char *portal,
                 int (*fn)(void *opaque, const char *iqn), void *opaque,
                 char *err, size_t errlen) {
  struct iscsi_discovery_address *list = iscsi_discovery_sync(s), *a;
  int rc = 0;

  if (list == NULL && strlen(iscsi_get_error(s)) > 0)
    return errbuf_fail(err, errlen, VMH_EIO, "portal %s: discovery: %s", portal,
                       iscsi_get_error(s));
  for (a = list; a && rc == 0; a = a->next)
    rc = fn(opaque, a->target_name);
  if (list)
    iscsi_free_discovery_data(s, list);
  return rc;
}

/* A command's failure: the session's error, or the sense data. */
static int task_fail(struct iscsi_context *s, struct scsi_task *t,
                     const char *what, const char *cmd, char *err,
                     size_t errlen) {
  if (t == NULL)
    return errbuf_fail(err, errlen, VMH_EIO, "%s: %s: %s", what, cmd,
                       iscsi_get_error(s));
  return errbuf_fail(err, errlen, VMH_EIO, "%s: %s: %s (0x%02x/0x%04x)", what,
                     cmd, scsi_sense_key_str(t->sense.key), t->sense.key,
                     (unsigned)t->sense.ascq);
}

static int task_ok(struct scsi_task *t) {
  return t != NULL && t->status == SCSI_STATUS_GOOD;
}

static int unit_attention(const struct scsi_task *t) {
  return t != NULL && t->status == SCSI_STATUS_CHECK_CONDITION &&
         t->sense.key == SCSI_SENSE_UNIT_ATTENTION;
}

/* t = call, again while it reports a unit attention: the first command of
 * a new session to a LUN reports one (power on, reset, LUN inventory
 * changed), which says nothing about the command. */
#define UA_TRIES 3
#define RETRY_UA(t, call)                             \
  do {                                                \
    for (int try_ = 0; try_ < UA_TRIES; try_++) {     \
      (t) = (call);                                   \
      if (!unit_attention(t) || try_ == UA_TRIES - 1) \
        break;                                        \
      scsi_free_scsi_task(t);                         \
    }                                                 \
  } while (0)

/* Copies an INQUIRY string without its padding blanks. */
static void trimmed(char *dst, size_t size, const char *src) {
  size_t n;

  while (*src == ' ')
    src++;
  n = strlen(src);
  while (n > 0 && src[n - 1] == ' ')
    n--;
  if (n >= size)
    n = size - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t len) {
  const unsigned char *p = data;

  while (len--) {
    h ^= *p++;
    h *= UINT64_C(0x100000001b3);
  }
  return h;
}

/* The volume name of a LUN, from the best designator of the logical unit
 * (VPD 0x83): "naa.<hex>" or "eui.<hex>" (the identifiers the SCSI world
 * already uses, lower case), else "lun-<16 hex>" hashing a T10 vendor or
 * SCSI name designator.  Never from discovery order or the LUN number, so
 * a LUN keeps its name when it moves.  0, or -1 when there is nothing
 * usable. */
static int lun_name(const struct scsi_inquiry_device_identification *id,
                    char *name, size_t size) {
  static const struct {
    int type;
    const char *prefix;
  } order[] = {
      {SCSI_DESIGNATOR_TYPE_NAA, "naa."},
      {SCSI_DESIGNATOR_TYPE_EUI_64, "eui."},
      {SCSI_DESIGNATOR_TYPE_SCSI_NAME_STRING, NULL},
      {SCSI_DESIGNATOR_TYPE_T10_VENDORT_ID, NULL},
  };
  const struct scsi_inquiry_device_designator *d;
  size_t k, i, len;

  for (k = 0; k < sizeof order / sizeof order[0]; k++)
    for (d = id->designators; d; d = d->next) {
      if (d->association != SCSI_ASSOCIATION_LOGICAL_UNIT ||
          (int)d->designator_type != order[k].type || d->designator_length <= 0)
        continue;
      if (order[k].prefix && d->code_set == SCSI_CODESET_BINARY &&
          strlen(order[k].prefix) + 2 * (size_t)d->designator_length < size) {
        len = (size_t)snprintf(name, size, "%s", order[k].prefix);
        for (i = 0; i < (size_t)d->designator_length; i++)
          len += (size_t)snprintf(name + len, size - len, "%02x",
                                  (unsigned char)d->designator[i]);
        return 0;
      }
      if (order[k].prefix == NULL) {
        uint64_t h = fnv1a(UINT64_C(0xcbf29ce484222325), &order[k].type,
                           sizeof order[k].type);
        h = fnv1a(h, d->designator, (size_t)d->designator_length);
        snprintf(name, size, "lun-%016" PRIx64, h);
        return 0;
      }
    }
  return -1;
}

/* INQUIRY of a VPD page, unmarshalled into *ret (owned by *task). */
static int vpd(struct iscsi_context *s, uint32_t lun, int page,
               struct scsi_task **task, void **ret) {
  *task = iscsi_inquiry_sync(s, (int)lun, 1, page, 255);
  if (!task_ok(*task))
    return -1;
  *ret = scsi_datain_unmarshall(*task);
  return *ret ? 0 : -1;
}

/* Fills *out for a LUN; 1 when it is not a disk, -1 with no stable name,
 * or a VMH_E* code. */
static int describe(struct iscsi_context *s, const char *what, uint32_t lun,
                    struct scan_lun *out, char *err, size_t errlen) {
  _cleanup_task_ struct scsi_task *t_std = NULL, *t_sn = NULL, *t_id = NULL,
                                  *t_cap = NULL;
  struct scsi_inquiry_standard *std;
  struct scsi_inquiry_unit_serial_number *sn;
  struct scsi_inquiry_device_identification *id;
  struct scsi_readcapacity16 *cap;

  memset(out, 0, sizeof *out);
  out->lun = lun;
  t_std = iscsi_inquiry_sync(s, (int)lun, 0, 0, 64);
  if (!task_ok(t_std) || !(std = scsi_datain_unmarshall(t_std)))
    return task_fail(s, t_std, what, "INQUIRY", err, errlen);
  if (std->qualifier != SCSI_INQUIRY_PERIPHERAL_QUALIFIER_CONNECTED ||
      std->device_type != SCSI_INQUIRY_PERIPHERAL_DEVICE_TYPE_DIRECT_ACCESS)
    return 1;
  trimmed(out->vendor, sizeof out->vendor, std->vendor_identification);
  trimmed(out->product, sizeof out->product, std->product_identification);
  if (vpd(s, lun, SCSI_INQUIRY_PAGECODE_UNIT_SERIAL_NUMBER, &t_sn,
          (void **)&sn) == 0 &&
      sn->usn)
    trimmed(out->serial, sizeof out->serial, sn->usn);
  if (vpd(s, lun, SCSI_INQUIRY_PAGECODE_DEVICE_IDENTIFICATION, &t_id,
          (void **)&id) < 0 ||
      lun_name(id, out->name, sizeof out->name) < 0)
    return -1;
  RETRY_UA(t_cap, iscsi_readcapacity16_sync(s, (int)lun));
  if (!task_ok(t_cap) || !(cap = scsi_datain_unmarshall(t_cap)))
    return task_fail(s, t_cap, what, "READ CAPACITY (16)", err, errlen);
  out->block_size = cap->block_length;
  out->size = (cap->returned_lba + 1) * cap->block_length;
  return 0;
}

int scan_luns(struct iscsi_context *s, const char *portal, const char *iqn,
              int (*fn)(void *opaque, const struct scan_lun *lun), void *opaque,
              uint32_t *n_skipped, char *err, size_t errlen) {
  _cleanup_task_ struct scsi_task *t = NULL;
  struct scsi_reportluns_list *list;
  char what[600];
  uint32_t i;
  int rc = 0;

  snprintf(what, sizeof what, "portal %s, target %s", portal, iqn);
  RETRY_UA(t, iscsi_reportluns_sync(s, 0, 16384));
  if (!task_ok(t) || !(list = scsi_datain_unmarshall(t)))
    return task_fail(s, t, what, "REPORT LUNS", err, errlen);
  for (i = 0; i < list->num && rc == 0; i++) {
    struct scan_lun lun;
    /* Peripheral device addressing: the LUN is the low 14 bits. */
    rc = describe(s, what, list->luns[i] & 0x3fff, &lun, err, errlen);
    if (rc == -1) {
      (*n_skipped)++;
      rc = 0;
    } else if (rc == 1) {
      rc = 0;
    } else if (rc == 0) {
      rc = fn(opaque, &lun);
    }
  }
  return rc;
}

/* WRITE SAME (16) of one zero block over [lba, lba + n); 1 when the LUN
 * refuses the command itself (then the caller writes instead). */
static int zero_same(struct iscsi_context *s, uint32_t lun, uint64_t lba,
                     uint32_t n, unsigned char *block, uint32_t block_size) {
  _cleanup_task_ struct scsi_task *t = NULL;

  RETRY_UA(t, iscsi_writesame16_sync(s, (int)lun, lba, block, block_size, n, 0,
                                     0, 0, 0));
  if (task_ok(t))
    return 0;
  if (t && t->status == SCSI_STATUS_CHECK_CONDITION &&
      t->sense.key == SCSI_SENSE_ILLEGAL_REQUEST)
    return 1;
  return -1;
}

int scan_zero(struct iscsi_context *s, const char *what, uint32_t lun,
              uint64_t size, uint32_t block_size, char *err, size_t errlen) {
  uint64_t blocks = block_size ? size / block_size : 0, lba = 0;
  _cleanup_task_ struct scsi_task *t_bl = NULL;
  struct scsi_inquiry_block_limits *bl;
  unsigned char *zero;
  uint64_t ws_max = WS_BLOCKS_DEFAULT;
  int same = 1;

  if (block_size == 0 || block_size > ZERO_CHUNK)
    return errbuf_fail(err, errlen, VMH_EIO, "%s: block size %" PRIu32, what,
                       block_size);
  if (vpd(s, lun, SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, &t_bl, (void **)&bl) ==
          0 &&
      bl->max_ws_len > 0)
    ws_max = bl->max_ws_len < UINT32_MAX ? bl->max_ws_len : UINT32_MAX;
  if ((zero = calloc(1, ZERO_CHUNK)) == NULL)
    return errbuf_fail(err, errlen, VMH_ENOMEM, "out of memory");
  while (lba < blocks) {
    uint64_t left = blocks - lba;
    uint32_t n = 0;
    int r = 1;

    if (same) {
      n = (uint32_t)(left < ws_max ? left : ws_max);
      r = zero_same(s, lun, lba, n, zero, block_size);
      same = r == 0;
    }
    if (r == 1) {
      _cleanup_task_ struct scsi_task *t = NULL;
      uint64_t chunk = ZERO_CHUNK / block_size;

      n = (uint32_t)(left < chunk ? left : chunk);
      RETRY_UA(t, iscsi_write16_sync(s, (int)lun, lba, zero, n * block_size,
                                     (int)block_size, 0, 0, 0, 0, 0));
      if (!task_ok(t)) {
        free(zero);
        return task_fail(s, t, what, "WRITE (16)", err, errlen);
      }
    } else if (r < 0) {
      free(zero);
      return errbuf_fail(err, errlen, VMH_EIO, "%s: WRITE SAME (16): %s", what,
                         iscsi_get_error(s));
    }
    lba += n;
  }
  free(zero);
  return 0;
}
