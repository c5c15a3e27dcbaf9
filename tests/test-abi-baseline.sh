#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The ABI of the public headers against the recorded baselines
# (docs/design.md, rule 11): tests/abi/vmhost-abi-MAJOR.MINOR.txt, one per minor, written by
# tests/abi/abi-layout.py from the DWARF of a probe built with
# -DVMH_ABI_TARGET_MINOR=MINOR (see that script for the format and rules).
#
#   test-abi-baseline.sh            check (make check)
#   test-abi-baseline.sh --record   record the current minor's baseline
#                                   (make -C tests abi-baseline)
#
# Checks:
#   - each minor's layout only appends to the previous minor's;
#   - a released minor (< VMH_ABI_MINOR) matches its baseline exactly: no
#     struct gains a member or a byte (new enumerators, macros, types are
#     fine);
#   - the current minor is a compatible successor of its baseline (fields
#     appended after the old end of growable structs).

. "$srcdir/functions.sh"

record=no
case "${1:-}" in
  --record) record=yes ;;
  "") ;;
  *) fail "usage: $0 [--record]" ;;
esac

[ "${ABIDW:-no}" != no ] || ABIDW=abidw
requires python3 "$ABIDW" "${CC%% *}"

abidir=$srcdir/abi
layout=$abidir/abi-layout.py
inc=(-I "$top_srcdir/plugin-api" -I "$top_builddir/plugin-api")

read -r major minor < <(printf '#include <vmhost/common.h>\nvmh_abi VMH_ABI_MAJOR VMH_ABI_MINOR\n' |
                          $CC -E -P "${inc[@]}" - | awk '$1 == "vmh_abi" { print $2, $3 }')
[ -n "$major" ] && [ -n "$minor" ] || fail "cannot read VMH_ABI_MAJOR/MINOR"

arch=$(uname -m)
tmpdir

# Current layouts, one per minor.
for (( m = 0; m <= minor; m++ )); do
  cur=$tmp/vmhost-abi-$major.$m.txt
  {
    echo "# vmhost plugin ABI $major.$m: the layout of the public headers built"
    echo "# with -DVMH_ABI_TARGET_MINOR=$m.  Written by tests/abi/abi-layout.py"
    echo "# (make -C tests abi-baseline); do not edit by hand."
    echo "# arch $arch"
    python3 "$layout" dump --cc "$CC" --abidw "$ABIDW" --minor "$m" "${inc[@]}"
  } >"$cur"
  if grep -q '^problem:' "$cur"; then
    grep '^problem:' "$cur" >&2
    fail "the headers break the ABI rules at minor $m (see above)"
  fi
done

if [ "$record" = yes ]; then
  for (( m = 0; m <= minor; m++ )); do
    base=$abidir/vmhost-abi-$major.$m.txt
    cur=$tmp/vmhost-abi-$major.$m.txt
    if [ "$m" -lt "$minor" ] && [ -f "$base" ]; then
      if ! python3 "$layout" compare --mode frozen "$base" "$cur" >"$tmp/cmp" 2>&1; then
        cat "$tmp/cmp" >&2
        fail "ABI $major.$m is released: refusing to rewrite $base"
      fi
      continue
    fi
    cp "$cur" "$base"
    echo "recorded $base"
  done
  exit 0
fi

# Baselines are recorded on one architecture; offsets differ on others.
first=$abidir/vmhost-abi-$major.0.txt
[ -f "$first" ] || fail "no baseline $first: record one with make -C tests abi-baseline"
base_arch=$(awk '$1 == "#" && $2 == "arch" { print $3; exit }' "$first")
if [ -n "$base_arch" ] && [ "$base_arch" != "$arch" ]; then
  skip_unsupported "the baselines were recorded on $base_arch, this is $arch"
fi

status=0
# compare [--quiet] ARGS...: print notes (unless --quiet), errors fail.
compare ()
{
  local out=$tmp/compare.out quiet=no
  if [ "$1" = --quiet ]; then quiet=yes; shift; fi
  if python3 "$layout" compare "$@" >"$out" 2>&1; then
    [ "$quiet" = yes ] || grep '^note:' "$out" || true
  else
    cat "$out" >&2
    status=1
  fi
}

# 1. Each minor only appends to the one before it.
for (( m = 1; m <= minor; m++ )); do
  compare --quiet --mode append --label "headers $major.$((m - 1)) -> $major.$m" \
    "$tmp/vmhost-abi-$major.$((m - 1)).txt" "$tmp/vmhost-abi-$major.$m.txt"
done

# 2. Each minor against its baseline.
newest=
for (( m = 0; m <= minor; m++ )); do
  base=$abidir/vmhost-abi-$major.$m.txt
  cur=$tmp/vmhost-abi-$major.$m.txt
  if [ -f "$base" ]; then
    newest=$base
    if [ "$m" -lt "$minor" ]; then
      compare --mode frozen --label "ABI $major.$m (released)" "$base" "$cur"
    else
      compare --mode append --label "ABI $major.$m" "$base" "$cur"
    fi
  elif [ "$m" -eq "$minor" ]; then
    echo "note: no baseline for ABI $major.$m yet: comparing with $newest;" \
         "record it with make -C tests abi-baseline when $major.$m is released"
    compare --mode append --label "ABI $major.$m" "$newest" "$cur"
  else
    echo "ERROR: ABI $major.$m was released but $base is missing" >&2
    status=1
  fi
done

if [ "$status" -ne 0 ]; then
  echo "The public headers changed incompatibly (see ERROR lines above)." >&2
  echo "Fields are only ever appended: see plugin-api/vmhost/common.h." >&2
  exit 1
fi
