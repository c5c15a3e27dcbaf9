/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ch-config — Cloud Hypervisor's VmConfig and DiskConfig (its REST API's
 * request bodies, as JSON) from the ABI's VM spec and disks.
 *
 * Only fields of the published API schema are written (Cloud Hypervisor
 * ignores unknown fields silently, so a typo would be lost);
 * tests/ch-configgen prints the body of every spec shape and the test
 * validates it against the schema tables of the fake VMM.  Every input the
 * plugin cannot honour (a network disk, a bridge binding, a VLAN, a SCSI
 * bus …) is refused with a message saying why. */
#ifndef VMH_CH_CONFIG_H
#define VMH_CH_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <vmhost/types.h>

/* What the plugin adds to the spec. */
struct chc_opts {
  const char *firmware;    /* the instance's firmware; NULL: none */
  const char *serial_path; /* the serial console's unix socket */
  const char *vsock_path;  /* the vsock device's unix socket; NULL: none */
  uint32_t cid;            /* the vsock device's guest CID (>= 3) */
  const char *seed_path;   /* the cloud-init seed image; NULL: none */
};

/* The id Cloud Hypervisor knows the seed disk by. */
#define CHC_SEED_ID "cidata"

/* The VmConfig of spec in *ret (a new reference).  Returns 0, or a VMH_E*
 * code with a message in err. */
int chc_vm_config(const struct vmh_vm_spec *spec, const struct chc_opts *o,
                  json_t **ret, char *err, size_t errlen);

/* The DiskConfig of one disk (whose source the core resolved), with the
 * disk's name as its device id, in *ret (a new reference). */
int chc_disk_config(const struct vmh_disk *d, json_t **ret, char *err,
                    size_t errlen);

#endif
