/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qemu-img for the storage plugins that keep raw and qcow2 files (local,
 * nfs): disk formats by name, qemu-img run from an argv (no shell) with its
 * message kept for the caller's error, and what `qemu-img info` says of an
 * image about to become a base image; the checks of a volume spec and of a
 * resize these pools share.  Built always (libqemuimg.la: jansson,
 * a dependency of the core already). */
#ifndef VMHOST_QEMUIMG_H
#define VMHOST_QEMUIMG_H

#include <stddef.h>
#include <stdint.h>
#include <vmhost/vmhost-plugin.h>

/* Room for qemu-img's message: it is short; more is cut. */
#define QEMU_IMG_ERR_MAX 2048

/* "raw", "qcow2"; "?" for anything else. */
const char *disk_format_name(uint32_t format);
/* VMH_FORMAT_RAW or VMH_FORMAT_QCOW2; VMH_FORMAT_DEFAULT when s is
 * neither. */
uint32_t disk_format_parse(const char *s);

/* Run argv (argv[0] looked up in PATH), no shell.  Its stdout goes to *out
 * (malloc'd, NUL-terminated, the caller frees it; out NULL: dropped), its
 * stderr, as one line, into err.  0 when it exited 0; else VMH_ENOSPC when
 * it ran out of space, VMH_EIO otherwise, and err says why.  Sets no
 * message: the caller words it. */
int qemu_img_run(char *const argv[], char **out, char *err, size_t errlen);

/* `qemu_img info --output=json file`: the image's format (raw or qcow2,
 * else VMH_EINVAL) and virtual size.  An image with a backing file of its
 * own is refused (VMH_EINVAL): through the clones of a base it could reach
 * any file the hypervisor can.  file may be a path or a URL qemu-img opens
 * (nfs://…).  Messages start with `what`. */
int qemu_img_probe(const struct vmh_host *host, const char *qemu_img,
                   const char *file, const char *what, uint32_t *format,
                   uint64_t *vsize);

/* A volume spec for a pool of raw and qcow2 files, checked before anything
 * is made: its names, *format (the spec's, else default_format; a clone of
 * a base image is always qcow2 and asking raw for one is refused) and
 * *size (needed, except for a clone: see file_vol_clone_size).  VMH_EINVAL
 * with a message naming the volume. */
int file_vol_spec(const struct vmh_host *host,
                  const struct vmh_volume_spec *spec, uint32_t default_format,
                  uint32_t *format, uint64_t *size);

/* A clone's *size against its base image's bsize bytes: 0 takes the
 * base's; less is refused (VMH_EINVAL). */
int file_vol_clone_size(const struct vmh_host *host,
                        const struct vmh_volume_spec *spec, uint64_t bsize,
                        uint64_t *size);

/* Whether volume name (format, now bytes) may be resized to size, with
 * vol_resize's flags: 1 to go on, *need then the bytes the pool must still
 * have for it (a raw volume's growth; 0 for qcow2, which is thin); 0 when
 * it has that size already; VMH_EINVAL for a shrink without
 * VMH_RESIZE_SHRINK, or of qcow2. */
int file_vol_resize_check(const struct vmh_host *host, const char *name,
                          uint32_t format, uint64_t now, uint64_t size,
                          uint32_t flags, uint64_t *need);

#endif
