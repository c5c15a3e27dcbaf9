#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The frame codec's unit test, with the fuzz seed corpus as arguments.
exec ./test-agentframe "$top_srcdir"/agent/fuzz-corpus/*
