/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ch-configgen — prints the request bodies the Cloud Hypervisor plugin
 * builds (ch-config.c) for every spec shape, one JSON object per line:
 *   {"shape": NAME, "schema": "VmConfig"|"DiskConfig", "body": {…}}
 * for shapes it accepts, and
 *   {"shape": NAME, "refused": CODE, "message": TEXT}
 * for those it must refuse.  test-cloud-hypervisor-config.py validates
 * every body against the API's schema tables and checks every refusal.
 *
 * usage: ch-configgen */
#include <config.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch-config.h"

#define ID "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"

static void out(const char *shape, const char *schema, json_t *body, int rc,
                const char *err) {
  json_t *line = rc == 0 ? json_pack("{s:s, s:s, s:O}", "shape", shape,
                                     "schema", schema, "body", body)
                         : json_pack("{s:s, s:i, s:s}", "shape", shape,
                                     "refused", rc, "message", err);
  char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;

  if (text == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  puts(text);
  free(text);
  json_decref(line);
}

static void vm(const char *shape, const struct vmh_vm_spec *spec,
               const struct chc_opts *o) {
  char err[1024] = "";
  json_t *body = NULL;
  int rc = chc_vm_config(spec, o, &body, err, sizeof err);

  out(shape, "VmConfig", body, rc, err);
  json_decref(body);
}

static void disk(const char *shape, const struct vmh_disk *d) {
  char err[1024] = "";
  json_t *body = NULL;
  int rc = chc_disk_config(d, &body, err, sizeof err);

  out(shape, "DiskConfig", body, rc, err);
  json_decref(body);
}

int main(void) {
  static const char *mons[] = {"192.0.2.1:6789"};
  struct vmh_disk_source file = {.struct_size = sizeof file,
                                 .type = VMH_SOURCE_FILE,
                                 .format = VMH_FORMAT_QCOW2,
                                 .path = "/pool/vda"};
  struct vmh_disk_source raw = {.struct_size = sizeof raw,
                                .type = VMH_SOURCE_FILE,
                                .format = VMH_FORMAT_RAW,
                                .path = "/pool/raw.img"};
  struct vmh_disk_source blk = {.struct_size = sizeof blk,
                                .type = VMH_SOURCE_BLOCK,
                                .format = VMH_FORMAT_RAW,
                                .path = "/dev/sdz"};
  struct vmh_disk_source rbd = {.struct_size = sizeof rbd,
                                .type = VMH_SOURCE_RBD};
  struct vmh_disk_source iscsi = {.struct_size = sizeof iscsi,
                                  .type = VMH_SOURCE_ISCSI};
  struct vmh_disk_source nfs = {
      .struct_size = sizeof nfs, .type = VMH_SOURCE_NFS, .path = "vol/vda"};
  struct vmh_disk disks[3] = {
      {.struct_size = sizeof disks[0], .name = "vda", .source = &file},
      {.struct_size = sizeof disks[1],
       .name = "vdb",
       .source = &raw,
       .readonly = 1,
       .boot_order = 2},
      {.struct_size = sizeof disks[2],
       .name = "vdc",
       .source = &blk,
       .boot_order = 1},
  };
  struct vmh_nic_binding tap = {.struct_size = sizeof tap,
                                .type = VMH_BINDING_TAP,
                                .tap = "tap7",
                                .mac = "52:54:00:00:00:07",
                                .mtu = 9000};
  struct vmh_nic_binding tap0 = {
      .struct_size = sizeof tap0, .type = VMH_BINDING_TAP, .tap = "tap8"};
  struct vmh_nic_binding bridge = {.struct_size = sizeof bridge,
                                   .type = VMH_BINDING_BRIDGE,
                                   .bridge = "br0"};
  struct vmh_nic_binding ovs = {.struct_size = sizeof ovs,
                                .type = VMH_BINDING_OVS,
                                .bridge = "br0",
                                .port = "p1",
                                .interface_id = "x"};
  struct vmh_nic_binding vlan = tap;
  struct vmh_nic nics[2] = {
      {.struct_size = sizeof nics[0], .name = "net0", .binding = &tap},
      {.struct_size = sizeof nics[1],
       .name = "net1",
       .mac = "52:54:00:00:00:08",
       .binding = &tap0},
  };
  struct vmh_vm_spec base = {.struct_size = sizeof base,
                             .id = ID,
                             .name = "shape",
                             .vcpus = 2,
                             .memory = 1u << 30};
  struct chc_opts o = {.firmware = "/fw/CLOUDHV.fd",
                       .serial_path = "/run/ch/" ID ".console",
                       .vsock_path = "/run/ch/" ID ".vsock",
                       .cid = 3};
  struct chc_opts seeded = o, nofw = o, novsock = o;
  struct vmh_vm_spec s;
  struct vmh_disk d;
  struct vmh_nic n;

  (void)mons;
  seeded.seed_path = "/state/" ID ".seed.iso";
  nofw.firmware = NULL;
  novsock.vsock_path = NULL;

  /* Accepted shapes. */
  vm("minimal-firmware", &base, &novsock);
  s = base;
  s.kernel = "/boot/vmlinuz";
  s.initrd = "/boot/initrd.img";
  s.cmdline = "console=ttyS0 root=/dev/vda1";
  vm("direct-kernel", &s, &nofw);
  s = base;
  s.disks = disks;
  s.n_disks = 3;
  s.nics = nics;
  s.n_nics = 2;
  s.guest_channel = 1;
  s.firmware = "uefi";
  vm("disks-nics-channel", &s, &o);
  vm("with-seed", &s, &seeded);
  s = base;
  s.vcpus = 255;
  s.memory = 4096;
  vm("limits", &s, &o);
  disk("hotplug-qcow2", &disks[0]);
  disk("hotplug-block-readonly", &disks[1]);

  /* Refused shapes. */
  s = base;
  vm("no-kernel-no-firmware", &s, &nofw);
  s.vcpus = 0;
  vm("zero-vcpus", &s, &o);
  s = base;
  s.vcpus = 256;
  vm("too-many-vcpus", &s, &o);
  s = base;
  s.memory = 1000;
  vm("memory-not-pages", &s, &o);
  s = base;
  s.firmware = "bios";
  vm("bios", &s, &o);
  s = base;
  s.cmdline = "quiet";
  vm("cmdline-without-kernel", &s, &o);
  d = disks[0];
  d.source = &rbd;
  rbd.pool = "rbd";
  rbd.image = "img";
  rbd.monitors = mons;
  rbd.n_monitors = 1;
  disk("rbd-source", &d);
  d.source = &iscsi;
  iscsi.portal = "192.0.2.1:3260";
  iscsi.iqn = "iqn.2024-01.example:a";
  disk("iscsi-source", &d);
  d.source = &nfs;
  nfs.server = "192.0.2.2";
  nfs.export_path = "/export";
  disk("nfs-source", &d);
  d = disks[0];
  d.source = NULL;
  disk("no-source", &d);
  d = disks[0];
  d.bus = VMH_BUS_SCSI;
  disk("scsi-bus", &d);
  d = disks[0];
  d.name = "_disk0";
  disk("reserved-disk-id", &d);
  d.name = "cidata";
  disk("seed-disk-id", &d);
  s = base;
  s.disks = disks;
  s.n_disks = 2;
  disks[1].name = "vda";
  vm("duplicate-disk", &s, &o);
  disks[1].name = "vdb";
  s = base;
  n = nics[0];
  n.binding = &bridge;
  s.nics = &n;
  s.n_nics = 1;
  vm("bridge-binding", &s, &o);
  n.binding = &ovs;
  vm("ovs-binding", &s, &o);
  n.binding = NULL;
  vm("no-binding", &s, &o);
  vlan.vlan = 42;
  n.binding = &vlan;
  vm("vlan", &s, &o);
  n = nics[0];
  n.model = VMH_NIC_E1000;
  vm("e1000", &s, &o);
  return 0;
}
