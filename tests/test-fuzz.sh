#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The libFuzzer harnesses of tests/fuzz/ (clang, with ASan and UBSan):
# built here, each run over its seed corpus and then for FUZZ_SECONDS
# (default 5: a regression run in `make check`; `make fuzz` runs them
# long).  A crash fails the test and leaves the input in the build
# tree's fuzz-build/ directory.  New inputs found go to a scratch corpus,
# never into the source tree.
. "$srcdir/functions.sh"

requires clang
: "${FUZZ_SECONDS:=5}"
mkdir -p "$builddir/fuzz-build"
out=$(cd "$builddir/fuzz-build" && pwd)
tmpdir

inc=(-I "$top_builddir" -I "$top_srcdir/plugin-api" -I "$top_builddir/plugin-api"
     -I "$top_srcdir/plugins/common" -I "$top_srcdir/core"
     -I "$top_srcdir/plugins/frontend/rpc")
cflags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
        "${inc[@]}")
gnutls=$(pkg-config --cflags --libs gnutls)

build ()
{
  local name=$1; shift
  # shellcheck disable=SC2086
  clang "${cflags[@]}" -o "$out/fuzz-$name" "$srcdir/fuzz/fuzz-$name.c" "$@" ||
    fail "cannot build fuzz-$name"
}
build validators "$top_srcdir/core/validate.c" "$top_srcdir/plugins/common/url.c"
build grpcwire "$top_srcdir/plugins/frontend/rpc/grpcwire.c" -lz
# shellcheck disable=SC2086
build tokens "$top_srcdir/plugins/common/authtoken.c" \
  "$top_srcdir/plugins/common/atomicfile.c" $gnutls -lpthread

build config "$top_srcdir/core/conftree.c" "$top_srcdir/core/error.c" \
  "$top_srcdir/core/validate.c" "$top_srcdir/plugins/common/errname.c" \
  "$top_srcdir/plugins/common/sizes.c" -lyaml
# shellcheck disable=SC2046
build restjson "$top_srcdir/plugins/common/abijson.c" \
  "$top_srcdir/plugins/common/sizes.c" $(pkg-config --cflags --libs jansson)
R=$top_srcdir/plugins/frontend/rpc
# shellcheck disable=SC2046
build rpcdecode -I "$top_builddir/plugins/frontend/rpc" "$R"/pbcheck.c \
  "$R"/abipb.c "$top_builddir/plugins/frontend/rpc/vmhost/v1/node.pb-c.c" \
  "$top_srcdir/plugins/common/abijson.c" "$top_srcdir/plugins/common/sizes.c" \
  $(pkg-config --cflags --libs libprotobuf-c jansson)
F=$top_srcdir/plugins/frontend/common
# shellcheck disable=SC2046
build h2server -I "$F" "$F"/h2server.c "$F"/h2buf.c "$F"/h2req.c \
  "$F"/h2answer.c "$F"/h2conn.c "$F"/h2http2.c "$F"/h2http1.c \
  "$F"/h2listen.c "$F"/h2tls.c "$F"/h2conf.c "$F"/h2auth.c \
  "$top_srcdir/plugins/common/authtoken.c" \
  "$top_srcdir/plugins/common/atomicfile.c" \
  "$top_srcdir/plugins/common/errname.c" \
  "$top_srcdir/plugins/common/netcommon.c" "$top_srcdir/plugins/common/ptrvec.c" \
  $(pkg-config --cflags --libs libnghttp2 gnutls) -lhttp_parser -lpthread

failed=0
for name in validators grpcwire rpcdecode tokens config restjson h2server; do
  corpus=$tmp/$name
  mkdir -p "$corpus"
  cp "$srcdir/fuzz/$name"/* "$corpus/"
  if ! (cd "$out" && "$out/fuzz-$name" -max_total_time="$FUZZ_SECONDS" \
          -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
          "$corpus") >"$tmp/$name.log" 2>&1; then
    tail -40 "$tmp/$name.log" >&2
    echo "FAIL: fuzz-$name crashed (input kept in $out)" >&2
    failed=$((failed + 1))
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$tmp/$name.log" |
    sed "s/^/fuzz-$name: /"
done
rm -rf /tmp/fuzz-tokens.* /tmp/fuzz-config.* /tmp/fuzz-h2.*
[ "$failed" -eq 0 ] || fail "$failed harness(es) crashed"
