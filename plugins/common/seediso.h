/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* seediso — cloud-init NoCloud seed images (libseediso, built for the
 * hypervisor plugins that attach them: libvirt, cloud-hypervisor).
 *
 * A seed is an ISO 9660 image with the volume id "cidata" holding the files
 * user-data, meta-data and (optionally) network-config at its root, with
 * Rock Ridge and Joliet names so that the guest sees them unabbreviated.
 * It is made with libisofs; the guest gets it as a read-only disk (a CD-ROM
 * under libvirt, a read-only virtio disk under Cloud Hypervisor). */
#ifndef VMHOST_UTIL_SEEDISO_H
#define VMHOST_UTIL_SEEDISO_H

#include <stddef.h>
#include <vmhost/types.h>

/* The seed's documents; NULL: that file is left out.  cloud-init needs
 * meta-data, so callers give one (seed_for_spec makes the minimal one). */
struct seed_docs {
  const char *user_data;
  const char *meta_data;
  const char *network_config;
};

/* Writes the seed image to path, atomically (a temporary file beside it,
 * fsync, rename): a reader never sees half an image, and a failure leaves
 * nothing at path.  Returns 0, or a VMH_E* code with a message in err. */
int seed_write(const char *path, const struct seed_docs *docs, char *err,
               size_t errlen);

/* 1 when the spec carries any cloud-init document (user-data, meta-data,
 * network-config): such a VM gets a seed. */
int seed_wanted(const struct vmh_vm_spec *spec);

/* Writes the seed of a spec to path (seed_write), with the minimal
 * meta-data (instance-id = the VM's id, local-hostname = its name) when the
 * spec gives none.  Returns 0, or a VMH_E* code with a message in err. */
int seed_for_spec(const struct vmh_vm_spec *spec, const char *path, char *err,
                  size_t errlen);

#endif /* VMHOST_UTIL_SEEDISO_H */
