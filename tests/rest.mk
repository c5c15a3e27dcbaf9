# SPDX-License-Identifier: LGPL-2.1-or-later
# The REST front-end (plugins/frontend/rest) end to end on the mock
# backends, with real clients: python's http.client, curl (HTTP/2 with
# prior knowledge, h2c upgrade, HTTPS with ALPN), nghttp, python-h2 for the
# abuse cases.  Responses are checked against openapi.yaml (python3-yaml,
# python3-jsonschema).  Included by tests/Makefile.am.
REST_TESTS = \
	test-rest-api.py \
	test-rest-list.py \
	test-rest-labels.py \
	test-rest-pages.py \
	test-rest-protocols.py \
	test-rest-tls.py \
	test-rest-events.py \
	test-rest-abuse.py \
	test-rest-drain.py \
	test-rest-openapi.py \
	test-agent-dist.py \
	test-openapi-valid.py
if BUILD_PLUGIN_REST
TESTS += $(REST_TESTS)
endif
EXTRA_DIST += $(REST_TESTS) resttest.py pagetest.py bench/agent-dist.py \
	bench/lookup-scale.py bench/list-scale.py bench/named-pages.py \
	bench/metrics-scrape.py
