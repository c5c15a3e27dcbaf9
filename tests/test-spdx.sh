#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every source file of the tree says its licence in an SPDX line (LICENSE
# says which part is under which licence; this mapping follows it):
#   plugin-api/ examples/ proto/vmhost/ plugins/frontend/rest/openapi.yaml
#                                        MIT (vendors and clients: any licence)
#   proto/grpc/                          Apache-2.0 (follows grpc-proto)
#   everything else                      LGPL-2.1-or-later
#
#   tests/test-spdx.sh          (as a test) list the files that lack it: fail
#   tests/test-spdx.sh --fix    (from the top of a checkout) add the line,
#                               in each file's comment syntax, after a
#                               shebang; idempotent
#
# The files are git's (ls-files); a tree without git metadata (a release
# tarball) was checked before it was made.
if [ -z "${BASH_VERSION:-}" ]; then
  exec bash "$0" "$@"
fi
set -euo pipefail

fix=
[ "${1:-}" = --fix ] && fix=1
cd "${top_srcdir:-$(dirname "$0")/..}"
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  . "${srcdir:-tests}/functions.sh"
  skip_unsupported "not a git checkout: the file list is git's"
fi

licence_of ()
{
  case "$1" in
    plugin-api/* | examples/* | proto/vmhost/* | \
      plugins/frontend/rest/openapi.yaml) echo MIT ;;
    proto/grpc/*) echo Apache-2.0 ;;
    *) echo LGPL-2.1-or-later ;;
  esac
}

# The comment syntax of a file: c, cxx, hash, scd (scdoc's "; "), or "-" (no line: prose,
# licence texts, generated or line-sensitive data, tool settings).
style_of ()
{
  case "$1" in
    LICENSE | LICENSES/* | *.md | *.txt | tests/configs/* | .gitignore | \
      .clang-format | *.json) echo - ;;
    *.c | *.h | *.h.in | *.syms) echo c ;;
    *.cpp | *.cc | *.js | *.proto) echo cxx ;;
    *.py | *.sh | *.am | *.mk | *.ac | *.m4 | *.yaml | *.yml | *.in | \
      *.supp | */Makefile | .ci/*) echo hash ;;
    *.scd) echo scd ;;
    *) if head -c 2 -- "$1" | grep -q '^#!'; then echo hash; else echo -; fi ;;
  esac
}

missing=0
while IFS= read -r -d '' f; do
  [ -f "$f" ] && [ ! -L "$f" ] || continue
  style=$(style_of "$f")
  [ "$style" != - ] || continue
  head -n 5 -- "$f" | grep -q 'SPDX-License-Identifier:' && continue
  if [ -z "$fix" ]; then
    echo "$f: no SPDX-License-Identifier line (tests/test-spdx.sh --fix adds it)" >&2
    missing=$((missing + 1))
    continue
  fi
  id=$(licence_of "$f")
  case "$style" in
    c) line="/* SPDX-License-Identifier: $id */" ;;
    cxx) line="// SPDX-License-Identifier: $id" ;;
    hash) line="# SPDX-License-Identifier: $id" ;;
    scd) line="; SPDX-License-Identifier: $id" ;;
  esac
  tmp=$(mktemp "$f.spdx.XXXXXX")
  # After a shebang, or after an scdoc page's first line (its title).
  if head -n 1 -- "$f" | grep -q '^#!' || [ "$style" = scd ]; then
    { head -n 1 -- "$f"; printf '%s\n' "$line"; tail -n +2 -- "$f"; } >"$tmp"
  else
    { printf '%s\n' "$line"; cat -- "$f"; } >"$tmp"
  fi
  chmod --reference="$f" "$tmp"
  mv -f -- "$tmp" "$f"
  echo "added: $f ($id)"
done < <(git ls-files -z)

[ "$missing" -eq 0 ] || { echo "$missing file(s) without an SPDX line" >&2; exit 1; }
