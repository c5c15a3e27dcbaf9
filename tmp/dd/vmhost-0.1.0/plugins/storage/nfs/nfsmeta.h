/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the nfs pool records about its volumes and images (NFS has no user
 * xattrs): one small "key=value" text file per volume or image under the
 * pool's .vmhost/ directory, written atomically (temporary file, fsync,
 * then link or rename), read once when the pool opens and kept in memory in
 * tables sorted by name.  The format of a volume is recorded when it is
 * made, never guessed from its content. */
#ifndef VMHOST_NFSMETA_H
#define VMHOST_NFSMETA_H

#include <stddef.h>
#include <stdint.h>
#include <vmhost/vmhost-plugin.h>

#include "nfsconn.h"
#include "ptrvec.h"

#define TMP_PREFIX ".tmp-"
#define SHA256_HEX 64

/* One volume or image. */
struct meta {
  char name[VMH_NAME_MAX + 1]; /* first: tables compare it */
  uint32_t format;             /* VMH_FORMAT_RAW or _QCOW2 */
  uint64_t vsize;              /* qcow2 volume, image: virtual size; raw: 0 */
  uint64_t bytes;              /* image: its file's size */
  char backing[VMH_NAME_MAX + 1]; /* volume: base image, "" none */
  char sha256[SHA256_HEX + 1];    /* image: verified digest */
};

/* A table: a ptrvec of struct meta *, sorted by name, owning them. */
struct meta *table_find(const struct ptrvec *t, const char *name, size_t *at);
/* Insert m (the table owns it from here).  -1: out of memory (the caller
 * keeps m) or the name is taken. */
int table_add(struct ptrvec *t, struct meta *m);
/* Remove and return the entry of name (the caller owns it), NULL: none. */
struct meta *table_take(struct ptrvec *t, const char *name);
void table_free(struct ptrvec *t);

/* A temporary name that is no volume name: .tmp-NAME.RANDOM. */
void tmp_name(char *buf, size_t len, const char *name);

/* Write m as dir/<m->name> through a temporary file in dir, flushed to
 * the server first.  replace 0: only if the name is free (a hard link
 * does it atomically: VMH_EEXIST, message set, when it is taken) — a
 * name claimed so is this call's alone; 1: over the old record.  0 or a
 * VMH_E* code with the message set. */
int meta_store(struct conns *c, struct nfs_context *nfs, const char *dir,
               const struct meta *m, int replace);
/* Read dir/<name> into m.  0, VMH_ENOENT (no message), or another code
 * with the message set (a record that does not parse is VMH_EINVAL). */
int meta_load(struct conns *c, struct nfs_context *nfs, const char *dir,
              const char *name, struct meta *m);

#endif
