# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by every shell test:   . "$srcdir/functions.sh"
#
# The automake harness provides (tests/Makefile.am, AM_TESTS_ENVIRONMENT):
#   top_srcdir top_builddir srcdir builddir   absolute paths
#   VMHOSTD             the vmhostd built in this tree
#   VMHOST_PLUGIN_DIR   every plugins/<kind>/<name>/.libs, colon-separated
#   CC CXX ABIDW PKG_CONFIG MAKE   the tools configure found (tests/abi.mk)
#
# Helpers:
#   requires CMD...        a missing command is a missing test dependency:
#                          skip (77), or fail under CI=true (CI installs all)
#   skip_because MSG...    any other missing dependency: the same
#   skip_unsupported MSG...  the machine lacks a facility no package provides
#                          (namespaces, another architecture): skip, even
#                          under CI
# (The one skip policy, stated in HACKING.md; tests/vmhtest.py has the same
# two, skip and skip_unsupported.)
#   cleanup_fn CMD [ARG]...  run CMD at exit; last registered runs first
#   tmpdir                 make a per-test directory, removed at exit; sets
#                          and prints $tmp (call it once, not in $(...))
#   fail MSG...            print MSG on stderr and exit 1
#   assert_grep [-F|-E] PATTERN FILE   fail, showing FILE, unless it matches
#   run_vmhostd ARGS...    run $VMHOSTD with a timeout; sets $out $err $rc
#   start_vmhostd CONFIG   start $VMHOSTD --config CONFIG in the background
#                          and wait for "vmhostd ready" in its log
#                          ($vmhostd_log); sets $vmhostd_pid
#   stop_vmhostd           SIGTERM it, wait, return its exit status
#
# Exit codes, as automake reads them: 0 pass, 77 skip, 99 hard error, other
# fail.

# The harness runs tests with $(SHELL), which may be a POSIX sh: these
# helpers need bash.
if [ -z "${BASH_VERSION:-}" ]; then
  exec bash "$0" "$@"
fi

set -e
set -o pipefail

: "${top_srcdir:?run this test through make check}"
: "${top_builddir:?run this test through make check}"
: "${srcdir:?run this test through make check}"
: "${builddir:?run this test through make check}"
: "${VMHOSTD:=$top_builddir/core/vmhostd}"
: "${CC:=cc}"
: "${CXX:=c++}"
: "${MAKE:=make}"
: "${PKG_CONFIG:=pkg-config}"
export VMHOSTD

# Name of the running test, for messages.
_vmh_test=$(basename "$0" .sh)

# ---- cleanup ------------------------------------------------------------

_vmh_cleanups=()

cleanup_fn ()
{
  local cmd
  cmd=$(printf '%q ' "$@")
  _vmh_cleanups+=("$cmd")
}

_vmh_run_cleanups ()
{
  local status=$? i
  set +e
  for (( i = ${#_vmh_cleanups[@]} - 1; i >= 0; i-- )); do
    eval "${_vmh_cleanups[i]}"
  done
  _vmh_cleanups=()
  exit "$status"
}
trap _vmh_run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- messages -----------------------------------------------------------

fail ()
{
  echo "FAIL: $_vmh_test: $*" >&2
  exit 1
}

requires ()
{
  local cmd
  for cmd in "$@"; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
      skip_because "required command '$cmd' not found"
    fi
  done
}

# A missing test dependency other than a command: skip, or fail under CI.
skip_because ()
{
  if [ "${CI:-}" = true ]; then
    fail "missing test dependency (CI installs every one," \
         "packaging/install-deps.sh): $*"
  fi
  echo "SKIP: $*" >&2
  exit 77
}

# The machine lacks a facility no package provides: skip, even under CI.
skip_unsupported ()
{
  echo "SKIP (unsupported here): $*" >&2
  exit 77
}

# assert_grep [-F|-E] PATTERN FILE
assert_grep ()
{
  local mode=-E
  case "$1" in -F|-E) mode=$1; shift ;; esac
  if ! grep -q "$mode" -e "$1" -- "$2"; then
    echo "--- $2" >&2
    cat -- "$2" >&2 || true
    echo "---" >&2
    fail "expected ${mode#-} pattern '$1' in $2"
  fi
}

# assert_not_grep [-F|-E] PATTERN FILE
assert_not_grep ()
{
  local mode=-E
  case "$1" in -F|-E) mode=$1; shift ;; esac
  if grep -q "$mode" -e "$1" -- "$2"; then
    echo "--- $2" >&2
    cat -- "$2" >&2 || true
    echo "---" >&2
    fail "unexpected ${mode#-} pattern '$1' in $2"
  fi
}

# ---- temporary directory ------------------------------------------------

tmpdir ()
{
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmhost-$_vmh_test.XXXXXX")
  cleanup_fn rm -rf "$tmp"
}

# ---- running vmhostd ----------------------------------------------------

# Long enough for a sanitizer build on a loaded machine; a hang is a bug.
: "${VMH_TEST_TIMEOUT:=60}"

# run_vmhostd ARGS...: run it to completion; stdout in $out, stderr in
# $err (files under $tmp), exit status in $rc.
run_vmhostd ()
{
  [ -n "${tmp:-}" ] || tmpdir
  out=$tmp/run.out
  err=$tmp/run.err
  rc=0
  timeout -k 5 "$VMH_TEST_TIMEOUT" "$VMHOSTD" "$@" >"$out" 2>"$err" || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    cat "$err" >&2
    fail "$VMHOSTD $* timed out after ${VMH_TEST_TIMEOUT}s"
  fi
}

vmhostd_pid=
vmhostd_log=

# True while PID runs (kill -0 also succeeds on an unreaped zombie).
_vmh_alive ()
{
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

_vmh_kill_vmhostd ()
{
  local pid=$1
  # Only the daemon still recorded as running: a reaped PID may be reused.
  [ "$vmhostd_pid" = "$pid" ] || return 0
  if _vmh_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    # Give it the drain time, then force.
    local i
    for (( i = 0; i < 100; i++ )); do
      _vmh_alive "$pid" || return 0
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

# start_vmhostd CONFIG [EXTRA-ARGS...]
start_vmhostd ()
{
  local config=$1 i
  shift
  [ -n "${tmp:-}" ] || tmpdir
  [ -z "$vmhostd_pid" ] || fail "start_vmhostd: vmhostd already running"
  vmhostd_log=$tmp/vmhostd.log
  : >"$vmhostd_log"
  "$VMHOSTD" --config "$config" "$@" </dev/null >"$tmp/vmhostd.out" \
    2>"$vmhostd_log" &
  vmhostd_pid=$!
  cleanup_fn _vmh_kill_vmhostd "$vmhostd_pid"
  for (( i = 0; i < 300; i++ )); do
    if grep -q 'vmhostd ready' "$vmhostd_log"; then
      return 0
    fi
    if ! _vmh_alive "$vmhostd_pid"; then
      local status=0
      wait "$vmhostd_pid" || status=$?
      vmhostd_pid=
      echo "--- vmhostd log ($vmhostd_log)" >&2
      cat "$vmhostd_log" >&2
      echo "---" >&2
      fail "vmhostd --config $config exited with status $status before it was ready"
    fi
    sleep 0.1
  done
  echo "--- vmhostd log ($vmhostd_log)" >&2
  cat "$vmhostd_log" >&2
  echo "---" >&2
  fail "vmhostd --config $config was not ready after 30 s"
}

# stop_vmhostd: SIGTERM, wait; returns vmhostd's exit status.
stop_vmhostd ()
{
  local status=0 pid=$vmhostd_pid i
  [ -n "$pid" ] || fail "stop_vmhostd: vmhostd is not running"
  kill -TERM "$pid" 2>/dev/null || true
  for (( i = 0; i < VMH_TEST_TIMEOUT * 10; i++ )); do
    _vmh_alive "$pid" || break
    sleep 0.1
  done
  if _vmh_alive "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" || true
    vmhostd_pid=
    cat "$vmhostd_log" >&2
    fail "vmhostd did not exit within ${VMH_TEST_TIMEOUT}s of SIGTERM"
  fi
  wait "$pid" || status=$?
  vmhostd_pid=
  return "$status"
}

# ---- what the headers say -------------------------------------------------

# abi_minor: VMH_ABI_MINOR of the headers in this tree.
abi_minor ()
{
  printf '#include <vmhost/common.h>\nvmh_abi VMH_ABI_MINOR\n' |
    $CC -E -P -I "$top_srcdir/plugin-api" -I "$top_builddir/plugin-api" - |
    awk '$1 == "vmh_abi" { print $2 }'
}

# abi_sizeof MINOR STRUCT: sizeof (struct STRUCT) built against ABI 1.MINOR.
abi_sizeof ()
{
  [ -n "${tmp:-}" ] || tmpdir
  local src=$tmp/sizeof-$1-$2.c exe=$tmp/sizeof-$1-$2
  if [ ! -x "$exe" ]; then
    printf '#include <stdio.h>\n#include <vmhost/vmhost-plugin.h>\nint main(void) { printf("%%zu\\n", sizeof (struct %s)); return 0; }\n' \
      "$2" >"$src"
    $CC -DVMH_ABI_TARGET_MINOR="$1" -I "$top_srcdir/plugin-api" \
      -I "$top_builddir/plugin-api" -o "$exe" "$src" ||
      fail "cannot compile sizeof (struct $2)"
  fi
  "$exe"
}

# ---- --dump-plugin --------------------------------------------------------

# expect_dump FILE KEY=VALUE... -- OP...
# $VMHOSTD --dump-plugin FILE exits 0, prints nothing on stderr, prints every
# KEY=VALUE line given, and has_OP=1 lines for exactly the OPs given.
expect_dump ()
{
  local file=$1 line key problems=0
  shift
  run_vmhostd --dump-plugin "$file"
  if [ "$rc" -ne 0 ] || [ -s "$err" ]; then
    echo "--- stdout:" >&2; cat "$out" >&2
    echo "--- stderr:" >&2; cat "$err" >&2
    fail "--dump-plugin $file: exit status $rc (expected 0, quiet stderr)"
  fi
  for key in name kind version abi_version struct_size thread_model ops_struct_size; do
    grep -q "^$key=" "$out" || {
      echo "missing key '$key'" >&2
      problems=$((problems + 1))
    }
  done
  if grep -vqE '^[a-z_]+=' "$out"; then
    echo "lines that are not key=value:" >&2
    grep -vE '^[a-z_]+=' "$out" >&2
    problems=$((problems + 1))
  fi
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    if ! grep -qxF -e "$1" "$out"; then
      echo "expected line '$1'" >&2
      problems=$((problems + 1))
    fi
    shift
  done
  [ "${1:-}" = -- ] && shift
  local want got
  want=$(for key in "$@"; do echo "has_$key=1"; done | sort)
  got=$(grep '^has_' "$out" | sort)
  if [ "$want" != "$got" ]; then
    echo "has_ lines differ (- expected, + got):" >&2
    diff <(echo "$want") <(echo "$got") >&2 || true
    problems=$((problems + 1))
  fi
  if [ "$problems" -ne 0 ]; then
    echo "--- --dump-plugin $file printed:" >&2
    cat "$out" >&2
    fail "--dump-plugin $file: $problems problem(s)"
  fi
}

# expect_refusal [-E] FILE REASON -- ARGS...
# $VMHOSTD ARGS... exits 2 and prints exactly one stderr line containing
# "FILE: REASON" (REASON an extended regex with -E, else a fixed string),
# and serves nothing.
expect_refusal ()
{
  local mode=-F
  if [ "$1" = -E ]; then mode=-E; shift; fi
  local file=$1 reason=$2 pat n
  shift 2
  [ "$1" = -- ] && shift
  run_vmhostd "$@"
  if [ "$mode" = -F ]; then
    pat="$file: $reason"
  else
    pat="$(printf '%s' "$file" | sed 's/[][\.*^$+?(){}|]/\\&/g'): $reason"
  fi
  n=$(grep -c "$mode" -e "$pat" "$err" || true)
  if [ "$rc" -ne 2 ] || [ "$n" -ne 1 ] || grep -q 'vmhostd ready' "$err"; then
    echo "--- stdout:" >&2; cat "$out" >&2
    echo "--- stderr:" >&2; cat "$err" >&2
    echo "---" >&2
    fail "$VMHOSTD $*: exit status $rc, $n matching line(s);" \
         "expected status 2 and one line with '$pat'"
  fi
}
