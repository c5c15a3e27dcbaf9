#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs INSIDE the guest of tests/test-systemd-boot.py, as the oneshot unit
# vmhost-boot-check.service, after vmhostd.service and multi-user.target,
# under the guest's real systemd (PID 1).  It checks the installed vmhostd
# the way an operator meets it and writes one line per check to the
# virtio-serial port org.vmhost.results.0:
#   ok NAME: DETAIL       the check passed
#   FAIL NAME: DETAIL     it failed (followed by "out NAME: ..." lines: the
#                         output that shows why)
#   info NAME: VALUE      a figure (boot times, the exposure score)
#   end                   the last line, then the guest powers off
# The host knows which NAMEs it expects: a missing "ok" line is a failure.
#
# Phase 1, vmhostd as mmdebstrap installed it and the boot started it:
# enabled, active (Type=notify: READY=1 reached), its STATUS= text, the
# sandbox in force, the unit verified, a reload (SIGHUP) keeps the same main
# process, vmhostctl creates and lists a VM, systemd-analyze security rates
# the unit as it runs, vmhostd's lines are in the journal with their
# priorities, SIGKILL is followed by a restart (Restart=) with the VM still
# there, and a stop ends in a clean exit within the timeout.
# Phase 2, the operator's commands of README ("Packages and the service",
# after the build: in /root/readme.sh, one a line) on this running system,
# from /root/debs/vmhost (the tree's place, below the packages): the
# packages are purged, then installed again with apt, the service started,
# a VM created and listed.
# Every wait is bounded.
set -u
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
LC_ALL=C.UTF-8
export LC_ALL

port=
for p in /sys/class/virtio-ports/*; do
  if [ "$(cat "$p/name" 2>/dev/null)" = org.vmhost.results.0 ]; then
    port=/dev/${p##*/}
  fi
done
if [ -z "$port" ]; then
  echo "vmhost-boot-check: no virtio-serial port org.vmhost.results.0" >/dev/console
  systemctl poweroff --no-block
  exit 1
fi
exec 3>"$port"
trap 'echo end >&3; systemctl poweroff --no-block' EXIT

work=$(mktemp -d)

ok ()
{
  local name=$1
  shift
  echo "ok $name: $*" >&3
}

# bad NAME DETAIL [FILE]: the check failed; FILE's lines go along.
bad ()
{
  echo "FAIL $1: $2" >&3
  if [ -n "${3:-}" ] && [ -f "$3" ]; then
    sed "s/^/out $1: /" "$3" >&3
  fi
}

info ()
{
  local name=$1
  shift
  echo "info $name: $*" >&3
}

prop ()
{
  systemctl show -P "$2" "$1"
}

journal ()
{
  journalctl -u vmhostd --no-pager -o cat >"$work/journal" 2>&1
}

# wait_journal TEXT SECONDS: until vmhostd's journal has TEXT (fixed
# string), at most SECONDS.
wait_journal ()
{
  local i
  for ((i = 0; i < $2 * 5; i++)); do
    journal
    grep -qF -- "$1" "$work/journal" && return 0
    sleep 0.2
  done
  return 1
}

# wait_active OLDPID SECONDS: until vmhostd is active with another main
# process than OLDPID, at most SECONDS.
wait_active ()
{
  local i pid
  for ((i = 0; i < $2 * 5; i++)); do
    pid=$(prop vmhostd MainPID)
    if [ "$(systemctl is-active vmhostd)" = active ] && [ "$pid" != 0 ] &&
      [ "$pid" != "$1" ]; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

ctl ()
{
  VMHOST_TOKEN_FILE=/var/lib/vmhost/auth/admin.token timeout 120 vmhostctl "$@"
}

# ---- phase 1: the service the boot started --------------------------------

# Times on the guest's monotonic clock (from the kernel's start), in s.
secs ()
{
  awk -v us="$1" 'BEGIN { printf "%.1f", us / 1e6 }'
}
info uptime "$(cut -d ' ' -f 1 /proc/uptime)"
info multi-user "$(secs "$(prop multi-user.target ActiveEnterTimestampMonotonic)")"
info vmhostd-exec "$(secs "$(prop vmhostd ExecMainStartTimestampMonotonic)")"
info vmhostd-ready "$(secs "$(prop vmhostd ActiveEnterTimestampMonotonic)")"
info systemd "$(systemctl --version | head -n 1)"

state=$(systemctl is-enabled vmhostd 2>&1)
if [ "$state" = enabled ]; then
  ok enabled "$state"
else
  bad enabled "systemctl is-enabled vmhostd: $state"
fi

# Type=notify: active only once vmhostd sent READY=1.
state=$(systemctl is-active vmhostd)
journal
if [ "$state" = active ] && [ "$(prop vmhostd Type)" = notify ]; then
  ok active "Type=notify, active, main PID $(prop vmhostd MainPID)"
else
  systemctl status --no-pager vmhostd >"$work/status" 2>&1
  cat "$work/journal" >>"$work/status"
  bad active "vmhostd is $state (Type=$(prop vmhostd Type))" "$work/status"
fi

status=$(prop vmhostd StatusText)
case "$status" in
  "serving: "*) ok status "$status" ;;
  *) bad status "StatusText='$status', expected 'serving: ...'" ;;
esac

# The hardening left the daemon what it needs: nothing refused in its log.
journal
if grep -E 'Permission denied|Read-only file system|Operation not permitted|Bad system call' \
  "$work/journal" >"$work/denied"; then
  bad hardening "vmhostd was refused something under the unit's sandbox" "$work/denied"
else
  ok hardening "no refusal in vmhostd's journal"
fi

# The sandbox is in force (a real kernel, a real manager: nothing of it
# skipped), and vmhostd serves inside it (the checks above and below): no
# new privileges, a seccomp filter, fewer capabilities than PID 1, a mount
# namespace of its own where / is read-only and /var/lib/vmhost writable.
pid=$(prop vmhostd MainPID)
st=/proc/$pid/status
mnt=$(awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo" | tail -n 1)
state=$(awk '$5 == "/var/lib/vmhost" { print $6 }' "/proc/$pid/mountinfo" | tail -n 1)
cap=$(awk '/^CapBnd:/ { print $2 }' "$st")
if ! grep -q '^NoNewPrivs:[[:space:]]*1$' "$st"; then
  bad sandbox "NoNewPrivs is not set" "$st"
elif ! grep -q '^Seccomp:[[:space:]]*2$' "$st"; then
  bad sandbox "no seccomp filter" "$st"
elif [ "$cap" = "$(awk '/^CapBnd:/ { print $2 }' /proc/1/status)" ]; then
  bad sandbox "the capability bounding set is PID 1's ($cap)" "$st"
elif [ "$(readlink "/proc/$pid/ns/mnt")" = "$(readlink /proc/1/ns/mnt)" ]; then
  bad sandbox "vmhostd shares PID 1's mount namespace"
elif [ "${mnt%%,*}" != ro ] || [ "${state%%,*}" != rw ]; then
  bad sandbox "/ is '$mnt' and /var/lib/vmhost '$state' for vmhostd" "/proc/$pid/mountinfo"
else
  ok sandbox "NoNewPrivs, seccomp, CapBnd $cap, / ro, /var/lib/vmhost rw"
fi

# The installed unit as this systemd reads it (the man pages are there,
# man is not: --man=no).
if systemd-analyze verify --man=no /lib/systemd/system/vmhostd.service \
  >"$work/verify" 2>&1 && [ ! -s "$work/verify" ]; then
  ok verify "systemd-analyze verify: nothing to say"
else
  bad verify "systemd-analyze verify /lib/systemd/system/vmhostd.service" "$work/verify"
fi

# Reload: SIGHUP, the same process, still active, and vmhostd says so.
pid=$(prop vmhostd MainPID)
if ! timeout 120 systemctl reload vmhostd >"$work/reload" 2>&1; then
  bad reload "systemctl reload vmhostd failed" "$work/reload"
elif [ "$(systemctl is-active vmhostd)" != active ]; then
  bad reload "vmhostd is $(systemctl is-active vmhostd) after the reload"
elif [ "$(prop vmhostd MainPID)" != "$pid" ]; then
  bad reload "the main PID changed from $pid to $(prop vmhostd MainPID)"
elif ! wait_journal "SIGHUP: log reopened and levels re-read" 60; then
  bad reload "no SIGHUP line in vmhostd's journal" "$work/journal"
else
  ok reload "same main PID $pid, still active"
fi

# The client, as root, with the admin token the first start wrote.
if ctl vm create boot1 --vcpus 1 --memory 256M --disk vda,size=1G,pool=pool0 \
  --nic net0,network=net0 >"$work/create" 2>&1; then
  ok vm-create "$(head -n 1 "$work/create")"
else
  bad vm-create "vmhostctl vm create boot1: exit $?" "$work/create"
fi
if ctl vm list >"$work/list" 2>&1 && grep -qw boot1 "$work/list"; then
  ok vm-list "boot1 listed"
else
  bad vm-list "vmhostctl vm list lacks boot1" "$work/list"
fi

# The exposure score of the unit as the running systemd sees it.
systemd-analyze security --no-pager vmhostd >"$work/security" 2>&1
score=$(sed -n 's/.*Overall exposure level for vmhostd.service: \([0-9.]*\).*/\1/p' \
  "$work/security")
if [ -z "$score" ]; then
  bad security "no exposure level from systemd-analyze security" "$work/security"
elif awk -v s="$score" 'BEGIN { exit !(s <= 4.0) }'; then
  ok security "exposure $score"
  info security "$score"
else
  bad security "exposure $score is above 4.0" "$work/security"
fi

# vmhostd's lines in the journal, stamped by journald alone (no time of
# vmhostd's own), each level a priority: -p warning has the warning the
# default config gives (rpc is not installed) and not the info lines.
journal
if grep -qE "^core: vmhostd ready: " "$work/journal"; then
  ok journal "$(grep -c . "$work/journal") lines, with \"$(grep -m 1 -F 'vmhostd ready: ' "$work/journal")\""
else
  bad journal "no \"core: vmhostd ready\" line in journalctl -u vmhostd" "$work/journal"
fi
journalctl -u vmhostd --no-pager -o cat -p warning >"$work/warnings" 2>&1
if grep -qF "optional frontend 'rpc' is not used" "$work/warnings" &&
  ! grep -qF "vmhostd ready" "$work/warnings"; then
  ok journal-priority "journalctl -p warning: $(grep -c . "$work/warnings") lines"
else
  bad journal-priority "journalctl -u vmhostd -p warning: not the warning alone" "$work/warnings"
fi

# SIGKILL: Restart=on-failure starts it again (RestartSec=5s); the VM record
# survived.
pid=$(prop vmhostd MainPID)
restarts=$(prop vmhostd NRestarts)
if ! systemctl kill -s KILL vmhostd >"$work/kill" 2>&1; then
  bad restart "systemctl kill -s KILL vmhostd failed" "$work/kill"
elif ! wait_active "$pid" 180; then
  systemctl status --no-pager vmhostd >"$work/status" 2>&1
  bad restart "not active again with a new main PID within 180 s" "$work/status"
elif [ "$(prop vmhostd NRestarts)" != $((restarts + 1)) ]; then
  bad restart "NRestarts $(prop vmhostd NRestarts), expected $((restarts + 1))"
elif ! ctl vm list >"$work/list" 2>&1 || ! grep -qw boot1 "$work/list"; then
  bad restart "after the restart vmhostctl vm list lacks boot1" "$work/list"
else
  ok restart "main PID $pid killed, $(prop vmhostd MainPID) serving, boot1 still listed"
fi

# Stop: SIGTERM, STOPPING=1, drain, a clean exit before TimeoutStopSec.
start=$(date +%s%N)
if ! timeout 300 systemctl stop vmhostd >"$work/stop" 2>&1; then
  bad stop "systemctl stop vmhostd failed" "$work/stop"
else
  took=$((($(date +%s%N) - start) / 1000000))
  info stop-ms "$took"
  journal
  state=$(systemctl is-active vmhostd)
  result=$(prop vmhostd Result)
  code=$(prop vmhostd ExecMainCode)
  status=$(prop vmhostd ExecMainStatus)
  # ExecMainCode 1: CLD_EXITED (not killed by the manager).
  if [ "$state" != inactive ] || [ "$result" != success ] || [ "$code" != 1 ] ||
    [ "$status" != 0 ]; then
    bad stop "after stop: $state, Result=$result, ExecMainCode=$code, ExecMainStatus=$status" \
      "$work/journal"
  elif ! grep -qF "Terminated: draining" "$work/journal"; then
    bad stop "no \"Terminated: draining\" line: vmhostd did not drain" "$work/journal"
  else
    ok stop "inactive after $took ms, exit status 0, Result=success"
  fi
fi

# ---- phase 2: README's commands on this running system --------------------

if ! apt-get purge -y -q vmhost-cli vmhost-plugin-rest vmhostd >"$work/purge" 2>&1; then
  bad purge "apt-get purge failed" "$work/purge"
else
  left=$(ls -d /etc/vmhost /var/lib/vmhost /var/log/vmhost /run/vmhost \
    /etc/systemd/system/multi-user.target.wants/vmhostd.service 2>/dev/null | tr '\n' ' ')
  left=${left% }
  info purge-left "${left:-nothing}"
  if [ "$(systemctl is-active vmhostd)" = active ]; then
    bad purge "vmhostd still active after the purge"
  else
    ok purge "vmhost-cli vmhost-plugin-rest vmhostd purged"
  fi
fi
# What the purge leaves (the VM records, the admin token) goes too: this is
# the fresh machine of README.
rm -rf /etc/vmhost /var/lib/vmhost /var/log/vmhost

n=0
cd /root/debs/vmhost || exit 1
while IFS= read -r line; do
  n=$((n + 1))
  # One shell for all: an export holds for the next lines.
  case "$line" in
    export\ * | cd\ *) eval "$line" >"$work/readme.$n" 2>&1 ;;
    *) eval "timeout 300 $line" >"$work/readme.$n" 2>&1 </dev/null ;;
  esac
  rc=$?
  if [ "$rc" = 0 ]; then
    ok "readme-$n" "$line"
  else
    bad "readme-$n" "'$line': exit $rc" "$work/readme.$n"
  fi
  case "$line" in
    # Whether the packages' postinst started the service by itself.
    "apt install "*) info postinst-started "$(systemctl is-active vmhostd)" ;;
  esac
done </root/readme.sh
info readme-lines "$n"
if grep -qw web1 "$work/readme.$n"; then
  ok readme-vm "the last command listed web1"
else
  bad readme-vm "the output of '$(tail -n 1 /root/readme.sh)' lacks web1" "$work/readme.$n"
fi
state=$(systemctl is-enabled vmhostd 2>&1)/$(systemctl is-active vmhostd)
if [ "$state" = enabled/active ]; then
  ok readme-service "vmhostd enabled and active"
else
  bad readme-service "vmhostd is $state after README's commands"
fi
