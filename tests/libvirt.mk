# SPDX-License-Identifier: LGPL-2.1-or-later
# The libvirt hypervisor plugin (plugins/hypervisor/libvirt).  Included by
# tests/Makefile.am.
#
#   test-libvirt-e2e.py   every hypervisor operation through vmhostd's core
#                         on libvirt's in-process test driver (test:///default)
#   test-libvirt-xml.sh   the domain XML of every disk source and NIC binding
#                         type, validated with virt-xml-validate; the same
#                         XML defined on the test driver
#   test-libvirt-qemu.py  a real guest (TCG) on the embedded QEMU driver:
#                         guest channel, console, hot-plug, snapshots, stop
#                         with timeout, the guest's own power-off event
#   test-libvirt-daemon.py  the same guest on a private libvirtd that is
#                         restarted under vmhostd: unavailable, reconnect,
#                         events again; a graceful stop the guest honours
#   lvguest.py            the test guest and the private libvirtd
if BUILD_PLUGIN_LIBVIRT
check_PROGRAMS += libvirt-xmlgen
libvirt_xmlgen_SOURCES = libvirt-xmlgen.c
libvirt_xmlgen_CPPFLAGS = $(UNIT_CPP) -I$(top_srcdir)/plugins/hypervisor/libvirt
libvirt_xmlgen_CFLAGS = $(WARNINGS_CFLAGS) $(SANITIZER_CFLAGS) \
	$(LIBVIRT_CFLAGS) $(LIBXML_CFLAGS)
libvirt_xmlgen_LDADD = \
	$(top_builddir)/plugins/hypervisor/libvirt/liblvxml.la \
	$(LIBVIRT_LIBS) $(LIBXML_LIBS)
libvirt_xmlgen_LDFLAGS = $(SANITIZER_CFLAGS)

TESTS += test-libvirt-e2e.py test-libvirt-xml.sh test-libvirt-qemu.py \
	test-libvirt-daemon.py
endif
EXTRA_DIST += test-libvirt-e2e.py test-libvirt-xml.sh test-libvirt-qemu.py \
	test-libvirt-daemon.py lvguest.py \
	libvirt-xmlgen.c bench/libvirt-overhead.py bench/libvirt-direct.c \
	bench/libvirt-guest-boot.py
