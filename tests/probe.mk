# SPDX-License-Identifier: LGPL-2.1-or-later
# The probe hypervisor, built once per thread model, for the tests of the
# core's thread-model enforcement and per-VM ordering.
noinst_LTLIBRARIES += \
	probe/hypervisor-probe-all.la \
	probe/hypervisor-probe-instance.la \
	probe/hypervisor-probe-parallel.la
probe_hypervisor_probe_all_la_SOURCES = probe/hypervisor-probe.c
probe_hypervisor_probe_all_la_CPPFLAGS = $(TEST_PLUGIN_CPP) \
	-DPROBE_MODEL=VMH_THREAD_SERIALIZE_ALL -DPROBE_NAME='"probe-all"'
probe_hypervisor_probe_all_la_CFLAGS = $(TEST_PLUGIN_CC)
probe_hypervisor_probe_all_la_LDFLAGS = $(TEST_PLUGIN_LINK)
probe_hypervisor_probe_instance_la_SOURCES = probe/hypervisor-probe.c
probe_hypervisor_probe_instance_la_CPPFLAGS = $(TEST_PLUGIN_CPP) \
	-DPROBE_MODEL=VMH_THREAD_SERIALIZE_INSTANCE -DPROBE_NAME='"probe-instance"'
probe_hypervisor_probe_instance_la_CFLAGS = $(TEST_PLUGIN_CC)
probe_hypervisor_probe_instance_la_LDFLAGS = $(TEST_PLUGIN_LINK)
probe_hypervisor_probe_parallel_la_SOURCES = probe/hypervisor-probe.c
probe_hypervisor_probe_parallel_la_CPPFLAGS = $(TEST_PLUGIN_CPP) \
	-DPROBE_MODEL=VMH_THREAD_PARALLEL -DPROBE_NAME='"probe-parallel"'
probe_hypervisor_probe_parallel_la_CFLAGS = $(TEST_PLUGIN_CC)
probe_hypervisor_probe_parallel_la_LDFLAGS = $(TEST_PLUGIN_LINK)
