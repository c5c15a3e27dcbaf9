/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libvirt-direct — the reference loop of tests/bench/libvirt-overhead.py:
 * N define/start/destroy/undefine cycles called straight on libvirt, one
 * connection, the same XML shape the plugin writes for a VM without disks
 * or NICs.  Prints the seconds taken: wall-clock, then CPU (this process).
 *
 * usage: libvirt-direct URI N */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void quiet(void *opaque, virErrorPtr err) {
  (void)opaque;
  (void)err;
}

int main(int argc, char **argv) {
  struct timespec a, b, ca, cb;
  virConnectPtr c;
  char xml[1024];
  int i, n;

  if (argc != 3)
    return 2;
  n = atoi(argv[2]);
  virSetErrorFunc(NULL, quiet);
  c = virConnectOpen(argv[1]);
  if (c == NULL)
    return 1;
  clock_gettime(CLOCK_MONOTONIC, &a);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
  for (i = 0; i < n; i++) {
    virDomainPtr d;
    snprintf(xml, sizeof xml,
             "<domain type='test'><name>bench-%d</name>"
             "<uuid>00000000-0000-4000-8000-%012d</uuid>"
             "<memory unit='KiB'>131072</memory><vcpu>1</vcpu>"
             "<os><type>hvm</type></os><features><acpi/><apic/></features>"
             "<devices><serial type='unix'><source mode='bind' "
             "path='/tmp/bench-%d.console'/><target port='0'/></serial>"
             "</devices></domain>",
             i, i, i);
    d = virDomainDefineXML(c, xml);
    if (d == NULL || virDomainCreate(d) < 0 || virDomainDestroy(d) < 0 ||
        virDomainUndefine(d) < 0) {
      fprintf(stderr, "cycle %d: %s\n", i, virGetLastErrorMessage());
      return 1;
    }
    virDomainFree(d);
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
  printf("%.6f %.6f\n",
         (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9,
         (double)(cb.tv_sec - ca.tv_sec) +
             (double)(cb.tv_nsec - ca.tv_nsec) / 1e9);
  virConnectClose(c);
  return 0;
}
