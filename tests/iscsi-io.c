/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iscsi-io — read or write bytes of an iSCSI LUN through libiscsi, for the
 * iscsi plugin's tests (what a guest wrote, what a wipe left):
 *
 *   iscsi-io INITIATOR URL read OFFSET LENGTH    the bytes to stdout
 *   iscsi-io INITIATOR URL write OFFSET          stdin's bytes to the LUN
 *
 * URL is libiscsi's: iscsi://[user%secret@]host:port/iqn/lun.  OFFSET and
 * LENGTH are multiples of the LUN's block size.  Exit 0, or 1 with a
 * message. */
#include <config.h>

#include <inttypes.h>
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int die(struct iscsi_context *s, const char *what) {
  fprintf(stderr, "iscsi-io: %s: %s\n", what, s ? iscsi_get_error(s) : "");
  return 1;
}

static uint32_t block_size(struct iscsi_context *s, int lun) {
  struct scsi_task *t = iscsi_readcapacity16_sync(s, lun);
  struct scsi_readcapacity16 *c;
  uint32_t bs = 0;

  if (t && t->status == SCSI_STATUS_GOOD && (c = scsi_datain_unmarshall(t)))
    bs = c->block_length;
  if (t)
    scsi_free_scsi_task(t);
  return bs;
}

static int do_read(struct iscsi_context *s, int lun, uint32_t bs, uint64_t off,
                   uint64_t len) {
  while (len > 0) {
    uint32_t n = len > (1u << 20) ? 1u << 20 : (uint32_t)len;
    struct scsi_task *t =
        iscsi_read16_sync(s, lun, off / bs, n, (int)bs, 0, 0, 0, 0, 0);
    if (t == NULL || t->status != SCSI_STATUS_GOOD ||
        t->datain.size != (int)n) {
      if (t)
        scsi_free_scsi_task(t);
      return die(s, "READ (16)");
    }
    fwrite(t->datain.data, 1, n, stdout);
    scsi_free_scsi_task(t);
    off += n;
    len -= n;
  }
  return fflush(stdout) == 0 ? 0 : 1;
}

static int do_write(struct iscsi_context *s, int lun, uint32_t bs,
                    uint64_t off) {
  static unsigned char buf[1u << 20];
  size_t n;

  while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
    struct scsi_task *t;
    if (n % bs) {
      fprintf(stderr, "iscsi-io: %zu bytes is not whole blocks\n", n);
      return 1;
    }
    t = iscsi_write16_sync(s, lun, off / bs, buf, (uint32_t)n, (int)bs, 0, 0, 0,
                           0, 0);
    if (t == NULL || t->status != SCSI_STATUS_GOOD) {
      if (t)
        scsi_free_scsi_task(t);
      return die(s, "WRITE (16)");
    }
    scsi_free_scsi_task(t);
    off += n;
  }
  return 0;
}

int main(int argc, char **argv) {
  struct iscsi_context *s;
  struct iscsi_url *url;
  uint32_t bs;
  uint64_t off;
  int rc;

  if (argc < 5 || (strcmp(argv[3], "read") == 0 && argc != 6) ||
      (strcmp(argv[3], "write") == 0 && argc != 5)) {
    fprintf(stderr,
            "usage: iscsi-io INITIATOR URL read OFFSET LENGTH\n"
            "       iscsi-io INITIATOR URL write OFFSET\n");
    return 2;
  }
  if ((s = iscsi_create_context(argv[1])) == NULL)
    return die(NULL, "out of memory");
  if ((url = iscsi_parse_full_url(s, argv[2])) == NULL)
    return die(s, argv[2]);
  iscsi_set_targetname(s, url->target);
  iscsi_set_session_type(s, ISCSI_SESSION_NORMAL);
  iscsi_set_header_digest(s, ISCSI_HEADER_DIGEST_NONE_CRC32C);
  if (url->user[0])
    iscsi_set_initiator_username_pwd(s, url->user, url->passwd);
  if (iscsi_full_connect_sync(s, url->portal, url->lun) < 0)
    return die(s, "connect");
  if ((bs = block_size(s, url->lun)) == 0)
    return die(s, "READ CAPACITY (16)");
  off = strtoull(argv[4], NULL, 0);
  if (off % bs)
    return die(s, "offset is not a whole block");
  if (strcmp(argv[3], "read") == 0)
    rc = do_read(s, url->lun, bs, off, strtoull(argv[5], NULL, 0));
  else
    rc = do_write(s, url->lun, bs, off);
  iscsi_logout_sync(s);
  iscsi_destroy_url(url);
  iscsi_destroy_context(s);
  return rc;
}
