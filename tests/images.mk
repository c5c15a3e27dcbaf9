# SPDX-License-Identifier: LGPL-2.1-or-later
# A pool's image cache through the API front-ends (REST images.c, gRPC
# images.c): imports over HTTP from a server the test starts into the local
# pool and the mock pool, followed as operations with byte progress; the
# URL policy; list, get, delete (busy while a clone lives); a VM from an
# image.  vmhostctl's image commands: test-vmhostctl.py.  Included by
# tests/Makefile.am.
if BUILD_PLUGIN_LOCAL
if BUILD_PLUGIN_REST
TESTS += test-images.py
endif
if BUILD_PLUGIN_RPC
TESTS += test-images-rpc.py
endif
endif
EXTRA_DIST += test-images.py test-images-rpc.py
