/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lv-seed — see lv-seed.h. */
#include <config.h>

#include "lv-seed.h"

#include "atomicfile.h"
#include "errname.h"

#include <errno.h>
#include <fcntl.h>
/* struct burn_source without libburn: we only read what libisofs makes. */
#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vmhost/common.h>

#define SECTOR 2048
#define VOLUME_ID "cidata"

/* libisofs keeps process-wide state (its message queue, the init count);
 * one image is made at a time. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int inited;

int lvs_meta_data(const char *id, const char *name, char *buf, size_t size) {
  int n =
      snprintf(buf, size, "instance-id: %s\nlocal-hostname: %s\n", id, name);
  return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Adds one file with a copy of the given text at the image's root. */
static int add_file(IsoImage *img, const char *name, const char *text,
                    char *err, size_t errlen) {
  size_t len = strlen(text);
  unsigned char *buf;
  IsoStream *st = NULL;
  int r;

  /* The memory stream frees its buffer; an empty file still needs one. */
  buf = malloc(len > 0 ? len : 1);
  if (buf == NULL)
    return errbuf_fail(err, errlen, VMH_ENOMEM, "seed: out of memory");
  memcpy(buf, text, len);
  r = iso_memory_stream_new(buf, len, &st);
  if (r < 0) {
    free(buf);
    return errbuf_fail(err, errlen, VMH_ENOMEM, "seed: %s: %s", name,
                       iso_error_to_msg(r));
  }
  r = iso_image_add_new_file(img, iso_image_get_root(img), name, st, NULL);
  if (r < 0) {
    iso_stream_unref(st);
    return errbuf_fail(err, errlen, VMH_EIO, "seed: cannot add %s: %s", name,
                       iso_error_to_msg(r));
  }
  /* The file node took over our reference. */
  return 0;
}

/* Copies the image generator's output into fd, sector by sector. */
static int copy_out(struct burn_source *src, int fd, char *err, size_t errlen) {
  unsigned char buf[SECTOR];
  int n;

  while ((n = src->read_xt(src, buf, SECTOR)) > 0) {
    ssize_t off = 0;
    while (off < n) {
      ssize_t w = write(fd, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return errbuf_fail(err, errlen, VMH_EIO, "seed: write: %s",
                           strerror(errno));
      off += w;
    }
  }
  if (n < 0)
    return errbuf_fail(err, errlen, VMH_EIO,
                       "seed: the image generator failed");
  return 0;
}

/* Builds the image into fd.  Called with the lock held. */
static int build(const struct lvs_docs *docs, int fd, char *err,
                 size_t errlen) {
  IsoImage *img = NULL;
  IsoWriteOpts *opts = NULL;
  struct burn_source *src = NULL;
  int r, rc = 0;

  if (!inited) {
    /* bit 0: leave the daemon's locale alone; our names are ASCII. */
    if ((r = iso_init_with_flag(1)) < 0)
      return errbuf_fail(err, errlen, VMH_EIO,
                         "seed: cannot start libisofs: %s",
                         iso_error_to_msg(r));
    /* Failures come back as codes; nothing is printed on stderr. */
    iso_set_msgs_severities("NEVER", "NEVER", "libisofs");
    inited = 1;
  }
  if ((r = iso_image_new(VOLUME_ID, &img)) < 0)
    return errbuf_fail(err, errlen, VMH_ENOMEM, "seed: %s",
                       iso_error_to_msg(r));
  if ((docs->user_data != NULL &&
       (rc = add_file(img, "user-data", docs->user_data, err, errlen)) < 0) ||
      (docs->meta_data != NULL &&
       (rc = add_file(img, "meta-data", docs->meta_data, err, errlen)) < 0) ||
      (docs->network_config != NULL &&
       (rc = add_file(img, "network-config", docs->network_config, err,
                      errlen)) < 0))
    goto out;
  /* Profile 2 ("distribution"): Rock Ridge and Joliet, read-only modes.
   * The volume id stays lower-case: cloud-init looks for "cidata". */
  if ((r = iso_write_opts_new(&opts, 2)) < 0 ||
      (r = iso_write_opts_set_relaxed_vol_atts(opts, 1)) < 0 ||
      (r = iso_image_create_burn_source(img, opts, &src)) < 0) {
    rc = errbuf_fail(err, errlen, VMH_EIO, "seed: %s", iso_error_to_msg(r));
    goto out;
  }
  rc = copy_out(src, fd, err, errlen);
  if (rc < 0 && src->cancel != NULL)
    src->cancel(src);
  src->free_data(src);
  free(src);
out:
  iso_write_opts_free(opts);
  iso_image_unref(img);
  return rc;
}

int lvs_write(const char *path, const struct lvs_docs *docs, char *err,
              size_t errlen) {
  struct atomic_file af;
  int rc;

  if (atomic_open(&af, path, 0600) < 0)
    return errbuf_fail(err, errlen, VMH_EIO,
                       "seed: cannot create a file for %s: %s", path,
                       strerror(errno));
  pthread_mutex_lock(&lock);
  rc = build(docs, af.fd, err, errlen);
  pthread_mutex_unlock(&lock);
  if (rc < 0) {
    atomic_abort(&af);
    return rc;
  }
  if (atomic_commit(&af) < 0)
    return errbuf_fail(err, errlen, VMH_EIO, "seed: cannot write %s: %s", path,
                       strerror(errno));
  return 0;
}
