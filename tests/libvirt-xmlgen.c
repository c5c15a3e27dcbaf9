/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libvirt-xmlgen — writes the XML the libvirt plugin builds for every disk
 * source type and every NIC binding type into DIR, for
 * test-libvirt-xml.sh to validate with virt-xml-validate.  With --define
 * it also defines each domain on libvirt's test driver and undefines it
 * again: the schema is one judge, libvirt's own parser the other.
 *
 * usage: libvirt-xmlgen DIR [--define]
 *        libvirt-xmlgen DIR --define --ovs BRIDGE PORT IFACE-ID MAC VLAN
 * The second form writes (and defines) only ovs.xml: one NIC with the OVS
 * binding given, as a network plugin handed it out (test-ovs-libvirt.py). */
#include <config.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv-xml.h"

#define ID "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"

static const char *dir;
static virConnectPtr conn;
static int failed;

static void quiet(void *opaque, virErrorPtr err) {
  (void)opaque;
  (void)err;
}

static void put(const char *name, const char *xml) {
  char path[4096];
  FILE *f;

  snprintf(path, sizeof path, "%s/%s.xml", dir, name);
  f = fopen(path, "w");
  if (f == NULL || fputs(xml, f) == EOF || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

/* Defines the domain on the test driver and removes it again. */
static void define(const char *name, const char *xml) {
  virDomainPtr d;

  if (conn == NULL)
    return;
  d = virDomainDefineXML(conn, xml);
  if (d == NULL) {
    fprintf(stderr, "FAIL: libvirt refuses %s: %s\n", name,
            virGetLastErrorMessage());
    failed = 1;
    return;
  }
  virDomainUndefine(d);
  virDomainFree(d);
}

static void domain(const char *name, const struct vmh_vm_spec *spec) {
  struct lvx_opts o = {
      .domain_type = "test",
      .channel_path = "/run/vmhost/hv0/" ID ".agent",
      .console_path = "/run/vmhost/hv0/" ID ".console",
      .seed_path = spec->user_data ? "/run/vmhost/hv0/" ID ".seed.iso" : NULL,
  };
  char err[1024], *xml = NULL;

  if (lvx_domain(spec, &o, &xml, err, sizeof err) < 0) {
    fprintf(stderr, "FAIL: %s: %s\n", name, err);
    failed = 1;
    return;
  }
  put(name, xml);
  define(name, xml);
  free(xml);
  /* The same with the QEMU knobs set, for the schema only (the test
   * driver knows no such emulator). */
  o.domain_type = "kvm";
  o.machine = "q35";
  o.emulator = "/usr/bin/qemu-system-x86_64";
  if (lvx_domain(spec, &o, &xml, err, sizeof err) == 0) {
    char qname[256];
    snprintf(qname, sizeof qname, "%s-kvm", name);
    put(qname, xml);
    free(xml);
  }
}

/* One VM with a single disk of source `src`. */
static void disk_domain(const char *name, const struct vmh_disk_source *src) {
  struct vmh_disk disk = {
      .struct_size = sizeof disk, .name = "vda", .boot_order = 1};
  struct vmh_vm_spec spec = {.struct_size = sizeof spec,
                             .id = ID,
                             .name = name,
                             .vcpus = 1,
                             .memory = 256 << 20,
                             .disks = &disk,
                             .n_disks = 1,
                             .guest_channel = 1};
  char err[1024], *xml = NULL;

  disk.source = src;
  domain(name, &spec);
  /* The hot-plug XML of the same disk. */
  if (lvx_disk(ID, &disk, &xml, err, sizeof err) < 0) {
    fprintf(stderr, "FAIL: disk %s: %s\n", name, err);
    failed = 1;
    return;
  }
  {
    char dname[256];
    snprintf(dname, sizeof dname, "device-%s", name);
    put(dname, xml);
  }
  free(xml);
  if (src->auth_secret != NULL) {
    char sname[256];
    if (lvx_secret(ID, "vda", src->type, &xml, err, sizeof err) < 0) {
      fprintf(stderr, "FAIL: secret %s: %s\n", name, err);
      failed = 1;
      return;
    }
    snprintf(sname, sizeof sname, "secret-%s", name);
    put(sname, xml);
    free(xml);
  }
}

/* One VM whose NIC has the OVS binding of argv[0..4]. */
static int ovs_domain(char **argv) {
  struct vmh_nic_binding b = {.struct_size = sizeof b,
                              .type = VMH_BINDING_OVS,
                              .bridge = argv[0],
                              .port = argv[1],
                              .interface_id = argv[2],
                              .mac = argv[3],
                              .vlan = (uint32_t)strtoul(argv[4], NULL, 10)};
  struct vmh_nic nic = {.struct_size = sizeof nic, .name = "net0"};
  struct vmh_vm_spec spec = {.struct_size = sizeof spec,
                             .id = ID,
                             .name = "ovs",
                             .vcpus = 1,
                             .memory = 256 << 20,
                             .nics = &nic,
                             .n_nics = 1};

  nic.binding = &b;
  domain("ovs", &spec);
  return failed;
}

int main(int argc, char **argv) {
  static const char *const mons[] = {"10.0.0.1:6789", "[fd00::2]:6789",
                                     "mon3.example.org"};
  struct vmh_disk_source s;
  char err[1024], *xml = NULL;

  if (argc < 2) {
    fprintf(stderr, "usage: %s DIR [--define]\n", argv[0]);
    return 2;
  }
  dir = argv[1];
  virSetErrorFunc(NULL, quiet);
  if (argc > 2 && strcmp(argv[2], "--define") == 0) {
    conn = virConnectOpen("test:///default");
    if (conn == NULL) {
      fprintf(stderr, "test:///default: %s\n", virGetLastErrorMessage());
      return 1;
    }
  }

  if (argc == 9 && strcmp(argv[3], "--ovs") == 0)
    return ovs_domain(argv + 4);

  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  s.type = VMH_SOURCE_FILE;
  s.format = VMH_FORMAT_QCOW2;
  s.path = "/var/lib/vmhost/pool0/web 1 & <vda>.qcow2";
  disk_domain("disk-file", &s);

  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  s.type = VMH_SOURCE_BLOCK;
  s.path = "/dev/mapper/vg0-web1";
  disk_domain("disk-block", &s);

  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  s.type = VMH_SOURCE_RBD;
  s.format = VMH_FORMAT_RAW;
  s.pool = "rbd";
  s.image = "web-1-vda";
  s.monitors = mons;
  s.n_monitors = 3;
  s.auth_user = "vmhost";
  s.auth_secret = "AQBvY2xkAAAAABAAHVvS4b7i6XqQvLzkLq0qGg==";
  disk_domain("disk-rbd", &s);

  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  s.type = VMH_SOURCE_ISCSI;
  s.portal = "192.0.2.10:3260";
  s.iqn = "iqn.2024-01.org.example:storage.web";
  s.lun = 1;
  s.auth_user = "chapuser";
  s.auth_secret = "chap-secret";
  disk_domain("disk-iscsi", &s);

  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  s.type = VMH_SOURCE_NFS;
  s.server = "nfs.example.org";
  s.export_path = "/export/vms";
  s.path = "web-1/vda.raw";
  disk_domain("disk-nfs", &s);

  /* A cloud-init seed (a CD-ROM) beside a SATA disk that takes the first
   * SATA name. */
  memset(&s, 0, sizeof s);
  s.struct_size = sizeof s;
  s.type = VMH_SOURCE_FILE;
  s.path = "/var/lib/vmhost/pool0/ci-1-sda.raw";
  {
    struct vmh_disk disk = {.struct_size = sizeof disk,
                            .name = "sda",
                            .bus = VMH_BUS_SATA,
                            .source = &s};
    struct vmh_vm_spec spec = {.struct_size = sizeof spec,
                               .id = ID,
                               .name = "cloud-init",
                               .vcpus = 1,
                               .memory = 256 << 20,
                               .disks = &disk,
                               .n_disks = 1,
                               .user_data = "#cloud-config\n"};
    domain("cloud-init", &spec);
  }

  /* Every binding type in one VM, with MAC, VLAN and MTU; direct kernel
   * boot with a command line that needs escaping; UEFI; metadata. */
  {
    struct vmh_nic_binding b[3];
    struct vmh_nic nics[3];
    struct vmh_keyval md[2] = {{"owner", "ops <&'\">"}, {"tier", "web"}};
    struct vmh_vm_spec spec = {.struct_size = sizeof spec,
                               .id = ID,
                               .name = "nics & kernel",
                               .vcpus = 2,
                               .memory = 512 << 20,
                               .kernel = "/boot/vmlinuz",
                               .initrd = "/boot/initrd.img",
                               .cmdline = "console=ttyS0 x=\"a b\" <&>",
                               .firmware = "bios",
                               .nics = nics,
                               .n_nics = 3,
                               .guest_channel = 1,
                               .metadata = md,
                               .n_metadata = 2};
    int i;

    memset(b, 0, sizeof b);
    memset(nics, 0, sizeof nics);
    for (i = 0; i < 3; i++) {
      b[i].struct_size = sizeof b[i];
      nics[i].struct_size = sizeof nics[i];
      nics[i].binding = &b[i];
    }
    nics[0].name = "net0";
    b[0].type = VMH_BINDING_BRIDGE;
    b[0].bridge = "br0";
    b[0].mac = "52:54:00:00:00:01";
    b[0].mtu = 9000;
    nics[1].name = "net1";
    nics[1].model = VMH_NIC_E1000;
    b[1].type = VMH_BINDING_OVS;
    b[1].bridge = "ovsbr0";
    b[1].port = "vmh-port1";
    b[1].interface_id = "8a5d2f0e-1c3b-4a6d-9e7f-0b1c2d3e4f50";
    b[1].mac = "52:54:00:00:00:02";
    b[1].vlan = 42;
    nics[2].name = "net2";
    b[2].type = VMH_BINDING_TAP;
    b[2].tap = "vmhtap0";
    b[2].mac = "52:54:00:00:00:03";
    domain("nics-kernel", &spec);
    spec.name = "uefi";
    spec.firmware = "uefi";
    spec.kernel = spec.initrd = spec.cmdline = NULL;
    spec.n_metadata = 0;
    spec.guest_channel = 0;
    /* The schema only: the test driver has no firmware to pick. */
    if (conn != NULL)
      virConnectClose(conn);
    conn = NULL;
    domain("uefi", &spec);
  }

  if (lvx_snapshot("before <upgrade>", &xml, err, sizeof err) < 0) {
    fprintf(stderr, "FAIL: snapshot: %s\n", err);
    return 1;
  }
  put("snapshot", xml);
  free(xml);
  return failed;
}
