# SPDX-License-Identifier: LGPL-2.1-or-later
# The cluster front-end (plugins/frontend/cluster) against a real etcd
# (etcd-server), started by the test on 127.0.0.1 (etcdserver.py).
# Included by tests/Makefile.am.
#
#   test-cluster.py   node record and VM inventory, heartbeats, a duplicate
#                     node name, SIGTERM and kill -9, etcd stopped and back,
#                     a lost lease, TLS with client certificates
#   test-cluster-api.py  GET /api/v1/cluster and gRPC GetClusterStatus: up,
#                     degraded, up again; NOT_FOUND without the plugin
CLUSTER_TESTS = test-cluster.py
if BUILD_PLUGIN_CLUSTER
TESTS += $(CLUSTER_TESTS)
if BUILD_PLUGIN_REST
if BUILD_PLUGIN_RPC
TESTS += test-cluster-api.py
endif
endif
endif
EXTRA_DIST += $(CLUSTER_TESTS) test-cluster-api.py etcdserver.py \
	bench/cluster.py
