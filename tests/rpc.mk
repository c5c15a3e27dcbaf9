# The rpc front-end (plugins/frontend/rpc) end to end on the mock
# backends: the stock gRPC client (python3-grpcio, stubs generated from
# proto/ at test time with grpc_tools.protoc from python3-grpc-tools) and
# a raw HTTP/2 client (python3-h2) for malformed requests.  Included by
# tests/Makefile.am.
RPC_TESTS = \
	test-rpc-api.py \
	test-rpc-wire.py \
	test-rpc-tls.py \
	test-rpc-streams.py
if BUILD_PLUGIN_RPC
TESTS += $(RPC_TESTS)
endif
EXTRA_DIST += $(RPC_TESTS) rpctest.py
