#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The systemd unit (packaging/systemd/vmhostd.service, as this build made
# it): systemd-analyze verify finds nothing to say, with ExecStart pointing
# at this build's vmhostd and its man pages where man finds them; and
# systemd-analyze security rates its exposure no worse than 4.0 ("OK"),
# with the hardening the design asks for in place.  No systemd needs to
# run: both read the file alone.
. "$srcdir/functions.sh"
requires systemd-analyze man
# verify checks that ExecReload's /bin/kill is there (bash's kill is a
# builtin: requires would find it).
[ -x /bin/kill ] || skip_because "/bin/kill (package procps), the unit's ExecReload"

unit=$top_builddir/packaging/systemd/vmhostd.service
[ -f "$unit" ] || fail "$unit was not built"
tmpdir

# The unit as installed, but starting this build's daemon: verify checks
# that ExecStart is executable.  Its man pages (Documentation=) in a
# MANPATH of their own.
mkdir -p "$tmp/man/man5" "$tmp/man/man8"
cp "$top_builddir/docs/man/vmhostd.8" "$tmp/man/man8/" ||
  fail "docs/man/vmhostd.8 was not built"
cp "$top_builddir/docs/man/vmhostd.yaml.5" "$tmp/man/man5/"
sbin=$(sed -n 's|^ExecStart=\([^ ]*\)/vmhostd .*|\1|p' "$unit")
[ -n "$sbin" ] || fail "no ExecStart=.../vmhostd in $unit"
sed "s|^ExecStart=$sbin/vmhostd|ExecStart=$VMHOSTD|" "$unit" >"$tmp/vmhostd.service"

MANPATH=$tmp/man systemd-analyze verify "$tmp/vmhostd.service" >"$tmp/verify" 2>&1 ||
  fail "systemd-analyze verify failed: $(cat "$tmp/verify")"
[ ! -s "$tmp/verify" ] || fail "systemd-analyze verify: $(cat "$tmp/verify")"

for key in Type=notify ExecReload= Restart=on-failure RestartPreventExitStatus=2 \
  ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes \
  CapabilityBoundingSet= StateDirectory=vmhost RuntimeDirectory=vmhost; do
  assert_grep -F "$key" "$unit"
done

systemd-analyze security --offline=yes --no-pager "$tmp/vmhostd.service" \
  >"$tmp/security" 2>&1 || true
score=$(sed -n 's/.*Overall exposure level for vmhostd.service: \([0-9.]*\).*/\1/p' "$tmp/security")
[ -n "$score" ] || fail "no exposure level from systemd-analyze security: $(cat "$tmp/security")"
echo "systemd-analyze security: exposure $score"
awk -v s="$score" 'BEGIN { exit !(s <= 4.0) }' ||
  fail "exposure $score is above 4.0: $(grep '✗' "$tmp/security")"
