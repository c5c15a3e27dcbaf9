#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The man pages (docs/man): each one this build made renders without a
# warning from man --warnings (groff's), and vmhostd.yaml(5) documents
# every key the core reads (the key tables of core/settings.c) and carries
# every etc/plugins/<plugin>.yaml whole, so that it cannot drift from the
# shipped config references.
. "$srcdir/functions.sh"
requires man groff scdoc

mandir=$top_builddir/docs/man
pages="vmhostd.8 vmhostd.yaml.5 vmhost-plugin.3 vmhost-agent.8 agent.yaml.5"
[ -f "$top_srcdir/docs/man/vmhostctl.1.scd" ] && pages="$pages vmhostctl.1"
tmpdir

for p in $pages; do
  [ -f "$mandir/$p" ] || fail "$mandir/$p was not built (configure found no scdoc?)"
  # Warnings go to stderr; the rendered page is thrown away.  A fixed
  # width, so that line filling is the same on every terminal.
  MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l "$mandir/$p" \
    >"$tmp/$p.txt" 2>"$tmp/$p.warn" || fail "man -l $p failed: $(cat "$tmp/$p.warn")"
  [ ! -s "$tmp/$p.warn" ] || fail "man --warnings on $p:
$(cat "$tmp/$p.warn")"
  [ -s "$tmp/$p.txt" ] || fail "$p renders empty"
  # No placeholder left unreplaced.
  assert_not_grep -E '@[a-z]+@' "$mandir/$p"
done

# Every key the core reads is documented in vmhostd.yaml(5): the key tables
# of core/settings.c, and the keys read_instance() reads.
src=$mandir/vmhostd.yaml.5.scd
settings=$top_srcdir/core/settings.c
table ()
{
  sed -n "/^static const char \*const $1\[\] = {/,/};/p" "$settings" |
    grep -o '"[a-z_]*"' | tr -d '"'
}
instance_keys=$(sed -n '/^static int read_instance(/,/^}/p' "$settings" |
  grep -o '(m, "[a-z_]*"' | sed 's/.*"\(.*\)"/\1/' | sort -u)
documented ()
{
  grep -q -F -- "*$1*" "$src" || fail "vmhostd.yaml(5) does not document the key $1 (core/settings.c reads it)"
}
n=0
for k in $(table top_keys) $instance_keys; do documented "$k"; n=$((n + 1)); done
for k in $(table daemon_keys); do documented "daemon.$k"; n=$((n + 1)); done
for k in $(table log_keys); do documented "daemon.log.$k"; n=$((n + 1)); done
resources_keys=$(sed -n '/^static const char \*const keys\[\] = {/,/};/p' \
  "$top_srcdir/core/resconf.c" | grep -o '"[a-z_]*"' | tr -d '"')
for k in $resources_keys; do documented "resources.$k"; n=$((n + 1)); done
[ "$n" -ge 24 ] || fail "found only $n keys in core/settings.c: the test no longer reads its tables"

# Every plugin's reference, whole: each of its lines (less the SPDX line)
# is in the page's source.
for f in "$top_srcdir"/etc/vmhostd.yaml "$top_srcdir"/etc/plugins/*.yaml; do
  grep -v '^# SPDX-License-Identifier:' "$f" | sed 's/\\/\\\\/g' >"$tmp/want"
  grep -F -x -f "$tmp/want" "$src" | sort -u >"$tmp/have"
  sort -u "$tmp/want" | comm -23 - "$tmp/have" >"$tmp/lost"
  [ ! -s "$tmp/lost" ] || fail "vmhostd.yaml(5) lacks lines of ${f#$top_srcdir/}:
$(head "$tmp/lost")"
  name=${f##*/}
  [ "$name" = vmhostd.yaml ] || assert_grep -F "## ${name%.yaml}" "$src"
done
# agent.yaml(5) carries agent/agent.yaml whole, and names each of its keys
# (nested ones as exec.allow).
src=$mandir/agent.yaml.5.scd
grep -v '^# SPDX-License-Identifier:' "$top_srcdir/agent/agent.yaml" >"$tmp/want"
grep -F -x -f "$tmp/want" "$src" | sort -u >"$tmp/have"
sort -u "$tmp/want" | comm -23 - "$tmp/have" >"$tmp/lost"
[ ! -s "$tmp/lost" ] || fail "agent.yaml(5) lacks lines of agent/agent.yaml:
$(head "$tmp/lost")"
parent=
while IFS= read -r line; do
  case $line in
    [a-z]*:) parent=${line%:}; continue ;;
    [a-z]*:*) key=${line%%:*} ;;
    "  "[a-z]*:*) key=${line#  }; key=$parent.${key%%:*} ;;
    *) continue ;;
  esac
  grep -q -F -- "*$key*" "$src" || fail "agent.yaml(5) does not describe the key $key"
done <"$top_srcdir/agent/agent.yaml"
# The agent's options are in vmhost-agent(8).
for o in $(grep -o '{"[a-z-]*", [a-z_]*_argument' "$top_srcdir/agent/agent.c" | cut -d'"' -f2); do
  assert_grep -F "*--$o*" "$top_srcdir/docs/man/vmhost-agent.8.scd"
done
echo "ok: $pages"
