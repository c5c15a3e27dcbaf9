#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# docs/design.md, rule 4: every public header compiles alone (and twice: include
# guards), as C99 -pedantic and as C++11 -pedantic, with every warning an
# error, at every ABI minor it can target; includes nothing but the
# freestanding <stdarg.h>, <stddef.h>, <stdint.h> and other vmhost headers;
# wraps its declarations in extern "C".
# Also: a C plugin and the C++ test plugin using VMH_PLUGIN_REGISTER compile
# the same way.

. "$srcdir/functions.sh"

requires "${CC%% *}" "${CXX%% *}"

hdrdir=$top_srcdir/plugin-api/vmhost
inc=(-I "$top_srcdir/plugin-api" -I "$top_builddir/plugin-api")
cflags=(-std=c99 -pedantic -Wall -Wextra -Wundef -Wstrict-prototypes
        -Wmissing-prototypes -Wshadow -Wconversion -Wcast-qual -Werror
        -fsyntax-only)
cxxflags=(-std=c++11 -pedantic -Wall -Wextra -Wundef -Wshadow -Wconversion
          -Wcast-qual -Werror
          -fsyntax-only)

tmpdir
errors=0

# compile LANG FILE EXTRA-FLAGS...: fail loudly, keep going.
compile ()
{
  local lang=$1 file=$2 log=$tmp/compile.log
  shift 2
  local cmd
  if [ "$lang" = c ]; then
    cmd=($CC "${cflags[@]}" "${inc[@]}" "$@" "$file")
  else
    cmd=($CXX "${cxxflags[@]}" "${inc[@]}" "$@" "$file")
  fi
  if ! "${cmd[@]}" >"$log" 2>&1; then
    echo "FAIL: ${cmd[*]}" >&2
    echo "--- $file:" >&2
    cat "$file" >&2
    echo "--- compiler:" >&2
    cat "$log" >&2
    errors=$((errors + 1))
  fi
}

minor=$(printf '#include <vmhost/common.h>\nvmh_abi VMH_ABI_MINOR\n' |
          $CC -E -P "${inc[@]}" - | awk '$1 == "vmh_abi" { print $2 }')
[ -n "$minor" ] || fail "cannot read VMH_ABI_MINOR"

headers=()
for h in "$hdrdir"/*.h; do
  headers+=("vmhost/$(basename "$h")")
done
headers+=(vmhost/version.h)
[ "${#headers[@]}" -ge 10 ] || fail "found only ${#headers[@]} headers in $hdrdir"

for h in "${headers[@]}"; do
  name=$(basename "$h" .h)
  src=$tmp/$name.c
  printf '#include <%s>\n#include <%s>\ntypedef int vmh_test_nonempty;\n' \
    "$h" "$h" >"$src"
  cp "$src" "$tmp/$name.cpp"
  for (( m = 0; m <= minor; m++ )); do
    compile c "$src" -DVMH_ABI_TARGET_MINOR=$m
    compile cxx "$tmp/$name.cpp" -DVMH_ABI_TARGET_MINOR=$m
  done
  compile c "$src"
  compile cxx "$tmp/$name.cpp"

  # Only standard headers and our own.
  file=$top_srcdir/plugin-api/$h
  [ -f "$file" ] || file=$top_builddir/plugin-api/$h
  while read -r line; do
    case "$line" in
      '#include <stdarg.h>'|'#include <stddef.h>'|'#include <stdint.h>'|'#include <vmhost/'*'.h>') ;;
      *) echo "FAIL: $h: $line: public headers include only <stdarg.h>," \
              "<stddef.h>, <stdint.h> and <vmhost/*.h>" >&2
         errors=$((errors + 1)) ;;
    esac
  done < <(grep -E '^[[:space:]]*#[[:space:]]*include' "$file" | sed -E 's/[[:space:]]+/ /g; s/^ //; s/# include/#include/')

  # Anything declared is inside extern "C".
  if grep -qE '^(struct|enum|typedef|union)\b' "$file" &&
     ! grep -q 'extern "C"' "$file"; then
    echo "FAIL: $h declares types but has no extern \"C\" block" >&2
    errors=$((errors + 1))
  fi
  # Enumerators carry explicit values.
  if awk '/^enum [a-z_]+ \{/ { e = 1; next } e && /^\};/ { e = 0 }
          e && /^[[:space:]]+VMH_[A-Z0-9_]+[[:space:]]*(,|$|\/)/ { print; bad = 1 }
          END { exit bad }' "$file" >"$tmp/enum.out"; then :; else
    echo "FAIL: $h: enumerators without an explicit value:" >&2
    cat "$tmp/enum.out" >&2
    errors=$((errors + 1))
  fi
done

# A C plugin of each kind, as an author writes it, strictly.
for kind in 1 2 3 4; do
  compile c "$srcdir/plugins/fixture.c" -DFIX_KIND=$kind
done
compile c "$srcdir/plugins/fixture.c" -DVMH_ABI_TARGET_MINOR=0 -DFIX_KIND=2
# The C++ plugin, strictly (the build compiles it without -Werror).
compile cxx "$srcdir/plugins/cxx-plugin.cpp"

if [ "$errors" -ne 0 ]; then
  fail "$errors header check(s) failed"
fi
