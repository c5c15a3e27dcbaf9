# SPDX-License-Identifier: LGPL-2.1-or-later
# The guest channel (agent/ and plugins/frontend/guest), built with the
# guest plugin.  Included by tests/Makefile.am.
if BUILD_PLUGIN_GUEST
TESTS += test-agentframe.sh test-agent.py test-guest-hostile.py \
	test-guest-vsock.py
# The agent listening (vsock's stand-in) behind the fake Cloud Hypervisor.
if BUILD_PLUGIN_CLOUD_HYPERVISOR
TESTS += test-agent-vsock.py
endif
check_PROGRAMS += test-agentframe
# The agent's API through both front-ends, against fake agents.
# The TCG guest also drives the real agent through the REST API.
if BUILD_PLUGIN_REST
TESTS += test-guest-tcg.py
if BUILD_PLUGIN_RPC
TESTS += test-guest-api.py test-guest-thaw.py
endif
# The cross-compiled arm64 agent, run under qemu-user and served.
if BUILD_AGENT_ARM64
TESTS += test-agent-arm64.py
endif
endif
endif
EXTRA_DIST += test-agentframe.sh test-agent.py agenttest.py \
	test-guest-hostile.py test-guest-tcg.py test-guest-vsock.py \
	test-guest-api.py test-guest-thaw.py test-agent-arm64.py \
	test-agent-vsock.py \
	bench/guest-agent.py bench/agent.py

# The codec's unit test; it also runs the fuzz seed corpus
# (agent/fuzz-corpus) through the fuzz target's code.
test_agentframe_SOURCES = test-agentframe.c core-unit.h
test_agentframe_CPPFLAGS = $(UNIT_CPP) -I$(top_srcdir)/agent \
	-I$(top_builddir)/agent
test_agentframe_CFLAGS = $(UNIT_CC) $(PROTOBUF_C_CFLAGS)
test_agentframe_LDADD = $(top_builddir)/agent/libagentproto.la \
	$(PROTOBUF_C_LIBS)
test_agentframe_LDFLAGS = $(UNIT_LINK)
EXTRA_test_agentframe_DEPENDENCIES = $(top_srcdir)/agent/fuzz-frame.c
