# SPDX-License-Identifier: LGPL-2.1-or-later
# The rpc front-end (plugins/frontend/rpc) end to end on the mock
# backends: the stock gRPC client (python3-grpcio, stubs generated from
# proto/ at test time with grpc_tools.protoc from python3-grpc-tools) and
# a raw HTTP/2 client (python3-h2) for malformed requests.  Included by
# tests/Makefile.am.
RPC_TESTS = \
	test-rpc-api.py \
	test-rpc-list.py \
	test-rpc-pages.py \
	test-rpc-wire.py \
	test-rpc-tls.py \
	test-rpc-streams.py \
	test-rpc-node.py \
	test-rpc-reflection.py \
	test-rpc-events.py
if BUILD_PLUGIN_RPC
TESTS += $(RPC_TESTS) test-grpcwire
check_PROGRAMS += test-grpcwire
endif
EXTRA_DIST += $(RPC_TESTS) rpctest.py rpc-node-smoke.js bench/rpc-h2load.py \
	bench/rpc-ref-server.cc
# test-rpc-node.py installs @grpc/grpc-js here.
clean-local: clean-node-grpc
clean-node-grpc:
	rm -rf node-grpc
.PHONY: clean-node-grpc

# The framing rules alone (plugins/frontend/rpc/grpcwire.c, compiled in).
test_grpcwire_SOURCES = test-grpcwire.c core-unit.h
test_grpcwire_CPPFLAGS = $(UNIT_CPP)
test_grpcwire_CFLAGS = $(UNIT_CC) $(ZLIB_CFLAGS)
test_grpcwire_LDADD = $(ZLIB_LIBS)
test_grpcwire_LDFLAGS = $(UNIT_LINK)
EXTRA_test_grpcwire_DEPENDENCIES = \
	$(top_srcdir)/plugins/frontend/rpc/grpcwire.c \
	$(top_srcdir)/plugins/frontend/rpc/grpcwire.h
