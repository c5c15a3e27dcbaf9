/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lv-xml — libvirt XML for vmhost specs, written with libxml2's
 * xmlTextWriter so that every name, path and metadata value is escaped by
 * the library.  Kept apart from the plugin so that tests can build the XML
 * of every source and binding type and validate it (virt-xml-validate). */
#ifndef VMH_LV_XML_H
#define VMH_LV_XML_H

#include <stddef.h>
#include <vmhost/types.h>

/* The guest channel's virtio-serial port name (docs/design.md, "Contracts
 * between plugins"). */
#define LVX_CHANNEL_NAME "org.vmhost.agent.0"
/* Our namespace in <metadata>. */
#define LVX_NS_URI "https://vmhost.org/xmlns/libvirt/1"
#define LVX_NS_PREFIX "vmhost"

struct lvx_opts {
  const char *domain_type;  /* "kvm", "qemu", "test" … */
  const char *machine;      /* NULL: libvirt's default */
  const char *emulator;     /* NULL: libvirt's default */
  const char *channel_path; /* unix socket of the guest channel, or NULL */
  const char *console_path; /* unix socket of the serial console, or NULL */
  const char *seed_path;    /* cloud-init seed image (a CD-ROM), or NULL */
};

/* Name of the libvirt secret holding a disk's credentials (usage name). */
int lvx_secret_usage(const char *vm_id, const char *disk, char *buf,
                     size_t size);

/* Each returns 0 and a malloc'ed string in *ret, or a VMH_E* code with a
 * message in err. */
int lvx_domain(const struct vmh_vm_spec *spec, const struct lvx_opts *opts,
               char **ret, char *err, size_t errlen);
int lvx_disk(const char *vm_id, const struct vmh_disk *disk, char **ret,
             char *err, size_t errlen);
int lvx_snapshot(const char *name, char **ret, char *err, size_t errlen);
/* <secret> for a disk's credentials: ceph for RBD, iscsi for iSCSI. */
int lvx_secret(const char *vm_id, const char *disk, uint32_t source_type,
               char **ret, char *err, size_t errlen);

#endif /* VMH_LV_XML_H */
