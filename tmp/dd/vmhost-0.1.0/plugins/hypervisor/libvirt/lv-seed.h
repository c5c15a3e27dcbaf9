/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lv-seed — cloud-init NoCloud seed images.
 *
 * A seed is an ISO 9660 image with the volume id "cidata" holding the files
 * user-data, meta-data and (optionally) network-config at its root, with
 * Rock Ridge and Joliet names so that the guest sees them unabbreviated.
 * It is made with libisofs; the guest gets it as a read-only CD-ROM. */
#ifndef VMH_LV_SEED_H
#define VMH_LV_SEED_H

#include <stddef.h>

/* The seed's documents; NULL: that file is left out.  cloud-init needs
 * meta-data, so callers give one (lvs_meta_data makes the minimal one). */
struct lvs_docs {
  const char *user_data;
  const char *meta_data;
  const char *network_config;
};

/* Writes the minimal meta-data ("instance-id: ID\nlocal-hostname: NAME\n")
 * into buf.  Returns 0, or -1 when it does not fit. */
int lvs_meta_data(const char *id, const char *name, char *buf, size_t size);

/* Writes the seed image to path, atomically (a temporary file beside it,
 * fsync, rename): a reader never sees half an image, and a failure leaves
 * nothing at path.  Returns 0, or a VMH_E* code with a message in err. */
int lvs_write(const char *path, const struct lvs_docs *docs, char *err,
              size_t errlen);

#endif /* VMH_LV_SEED_H */
