#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Smoke test of the ctl front-end (tests/ctl): a vmhostd with mock backends
# serves the control socket; a VM is created, listed, stopped, started and
# deleted through it, with its volume and NIC binding checked on the way;
# events arrive through the module and the command line; bad requests are
# refused without killing the connection; SIGTERM stops the daemon cleanly
# and removes the socket.
. "$srcdir/functions.sh"

requires python3
tmpdir

: "${VMHOST_CTL_PLUGIN:=$builddir/ctl/.libs/frontend-ctl.so}"
: "${VMHCTL:=$srcdir/ctl/vmhctl.py}"
[ -f "$VMHOST_CTL_PLUGIN" ] || fail "$VMHOST_CTL_PLUGIN is not built"

sock=$tmp/ctl.sock
cat >"$tmp/vmhostd.yaml" <<EOF
daemon:
  state_dir: '$tmp/state'
  log:
    level: debug
hypervisors:
  - name: hv0
    plugin: mock
storage:
  - name: pool0
    plugin: mock
    message: 'shelf 2 offline'
networks:
  - name: net0
    plugin: mock
frontends:
  - name: ctl
    plugin: ctl
    file: '$VMHOST_CTL_PLUGIN'
    socket: '$sock'
    mode: '0660'
EOF

start_vmhostd "$tmp/vmhostd.yaml"
[ -S "$sock" ] || fail "no socket at $sock"
[ "$(stat -c %a "$sock")" = 660 ] || fail "socket mode is $(stat -c %a "$sock"), not 660"

# ctl REQUEST: the response in $tmp/out, vmhctl's exit status in $rc.
ctl ()
{
  rc=0
  python3 "$VMHCTL" "$sock" "$1" >"$tmp/out" || rc=$?
}

ctl '{"op":"ready"}'
[ "$rc" -eq 0 ] || fail "not ready: $(cat "$tmp/out")"

# The VM's life, checked from python: the structures are easier to read
# there than with grep.
export sock
python3 - <<'EOF' || fail "VM life cycle (see above)"
import os
import sys

sys.path.insert(0, os.path.join(os.environ["srcdir"], "ctl"))
import vmhctl

sock = os.environ["sock"]
GiB = 1 << 30


def expect(cond, what, r):
    if not cond:
        sys.exit("FAIL: %s: %s" % (what, r))


r = vmhctl.check(sock, {"op": "vm_create", "spec": {
    "name": "vm1", "vcpus": 1, "memory": GiB,
    "disks": [{"name": "vda", "size": GiB}],
    "nics": [{"name": "net0"}]}})
expect(r["http"] == 200 and r["error"] == "ok", "create answer", r)
expect(len(r["vms"]) == 1, "create returns the record", r)
vm = r["vms"][0]
vm_id = vm["id"]
expect(vm["name"] == "vm1" and len(vm_id) == 36, "id and name", vm)
expect(vm["status"] == "ready" and vm["state"] == "running", "running", vm)
expect(vm["vcpus"] == 1 and vm["memory"] == GiB, "size", vm)
disk = vm["disks"][0]
expect(disk["pool"] == "pool0" and disk["volume"] == "vm1-vda", "disk", disk)
nic = vm["nics"][0]
b = nic["binding"]
expect(b is not None and b["type"] == "bridge" and b["bridge"], "binding", nic)
expect(nic["mac"] and b["mac"] == nic["mac"], "MAC", nic)

r = vmhctl.check(sock, {"op": "volume_list", "pool": "pool0"})
vols = {v["name"]: v for v in r["volumes"]}
expect("vm1-vda" in vols and vols["vm1-vda"]["capacity"] == GiB, "volume", r)
# Where the volume lives: the file its disk source names (the mock's).
expect(vols["vm1-vda"]["location"] == "file://" + disk["source"]["path"],
       "location", (vols, disk))
r = vmhctl.check(sock, {"op": "pool_get", "pool": "pool0"})
expect(r["pools"][0]["message"] == "shelf 2 offline", "pool message", r)

r = vmhctl.check(sock, {"op": "vm_list"})
expect([v["id"] for v in r["vms"]] == [vm_id], "vm_list", r)
r = vmhctl.check(sock, {"op": "vm_list", "live": True})
expect([v["name"] for v in r["vms"]] == ["vm1"], "live vm_list", r)

# Stop and start, with the state events they cause.
with vmhctl.events(sock) as ev:
    for action, state in (("stop", "stopped"), ("start", "running")):
        r = vmhctl.check(sock, {"op": "vm_action", "vm": "vm1",
                                "action": action})
        e = ev.wait(lambda e: e["type"] == "vm_state"
                    and e["vm_id"] == vm_id and e["state"] == state)
        expect(e["source"] == "hv0" and e["time_us"] > 0, "event", e)
        r = vmhctl.check(sock, {"op": "vm_get", "vm": vm_id})
        expect(r["vms"][0]["state"] == state, "state after " + action, r)

r = vmhctl.check(sock, {"op": "vm_delete", "vm": "vm1"})
r = vmhctl.check(sock, {"op": "vm_list"})
expect(r["vms"] == [], "vm_list after delete", r)
r = vmhctl.call(sock, {"op": "vm_get", "vm": "vm1"})
expect(r["code"] == -2 and r["error"] == "not_found" and r["http"] == 404,
       "vm_get after delete", r)
r = vmhctl.check(sock, {"op": "volume_list", "pool": "pool0"})
expect("vm1-vda" not in [v["name"] for v in r["volumes"]], "volume gone", r)

# Refusals on one connection, which survives them all.
with vmhctl.Client(sock) as c:
    for req, who in (
            ('{"op":"no_such_op"}', "ctl"),
            ('{"op":"vm_list"', "ctl"),
            ('{"op":"vm_get","vm":1}', "ctl"),
            ('{"op":"vm_list","bogus":1}', "ctl"),
            ('{"op":"vm_list","flags":-1}', "ctl"),
            ('{"op":"vm_list","flags":2147483648}', "core"),
            ('{"op":"volume_list","pool":"pool0","flags":64}', "core"),
            ('{"op":"vm_create","spec":{"name":"x"},"flags":1024}', "core")):
        c.send(req.encode())
        r = c.read()
        expect(r["code"] == -1 and r["error"] == "invalid_argument"
               and r["http"] == 400 and r["message"], req, r)
        if who == "core":
            expect("flags" in r["message"], req, r)
    r = c.request({"op": "health"})
    expect(r["code"] == 0 and len(r["checks"]) >= 5, "health", r)
EOF

# The command line's event stream: subscribed once the ready file is
# there; a VM defined but not started gives its vm_created event (and its
# create operation's, which --type leaves out).
rm -f "$tmp/subscribed"
python3 "$VMHCTL" --events "$sock" --count 2 --timeout 30 \
  --type vm_created --type operation_ended \
  --ready-file "$tmp/subscribed" >"$tmp/events" &
events_pid=$!
for i in $(seq 300); do
  [ -e "$tmp/subscribed" ] && break
  kill -0 "$events_pid" 2>/dev/null || break
  sleep 0.1
done
[ -e "$tmp/subscribed" ] || fail "vmhctl --events did not subscribe"
ctl '{"op":"vm_create","no_start":true,"spec":{"name":"vm2","vcpus":1,"memory":1073741824}}'
[ "$rc" -eq 0 ] || fail "vm_create no_start: $(cat "$tmp/out")"
assert_grep -F '"state":"stopped"' "$tmp/out"
rc=0
wait "$events_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "vmhctl --events exited $rc"
[ "$(wc -l <"$tmp/events")" -eq 2 ] || fail "expected 2 event lines"
assert_grep -F '"type":"vm_created"' "$tmp/events"
ctl '{"op":"vm_delete","vm":"vm2"}'
[ "$rc" -eq 0 ] || fail "vm_delete vm2: $(cat "$tmp/out")"

# The command line: exit status 1 and the error for a refusal.
ctl '{"op":"no_such_op"}'
[ "$rc" -eq 1 ] || fail "vmhctl exited $rc for an unknown op"
assert_grep -F '"error":"invalid_argument"' "$tmp/out"

status=0
stop_vmhostd || status=$?
[ "$status" -eq 0 ] || fail "vmhostd exited with status $status after SIGTERM"
[ ! -e "$sock" ] || fail "the socket $sock is still there after stop"
assert_grep -F 'ctl: stopped' "$vmhostd_log"
assert_not_grep -F 'core bug' "$vmhostd_log"
