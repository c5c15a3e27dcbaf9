#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The Debian packages, end to end, the way an operator gets them:
#  1. dpkg-buildpackage -us -uc -b builds every package from a clean copy of
#     this tree (the files git knows, committed or not): tests/debbuild.sh,
#     once per tree for this test and test-systemd-boot.py;
#  2. lintian reports no error on them (its warnings go to the log);
#  3. each plugin package depends only on the libraries its plugin links:
#     vmhost-plugin-rest pulls no libvirt, Ceph, libnfs nor libiscsi;
#  4. a fresh Debian 12 root (mmdebstrap) gets vmhostd and two plugin
#     packages (rest, local), vmhost-agent-dist, and vmhost-cli once cli/
#     is in the tree,
#     with apt, as "apt install ./x.deb" does;
#  5. vmhostd starts there from the installed /etc/vmhost/vmhostd.yaml (its
#     ports moved to free ones) and answers /healthz, /readyz,
#     /api/v1/host/health and /api/v1/plugins;
#     exactly the installed plugins are in the plugin directory and load,
#     and a config naming another plugin is refused by name; the installed
#     vmhostctl creates and lists a VM there; vmhost-agent-dist's agent
#     (binary and .deb) is served at /api/v1/agent/* from the default config.
# It takes about two minutes (mostly the build and apt); it prints the
# time of each step.
. "$srcdir/functions.sh"
requires dpkg-buildpackage dh scdoc lintian mmdebstrap curl git python3 flock
[ "$(id -u)" = 0 ] || skip_because "needs root: mmdebstrap's root mode and chroot"
if ! git -C "$top_srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  skip_unsupported "not a git checkout: the packages are built from the files git knows"
fi
tmpdir

# mmdebstrap's root mode mounts /proc, /sys and /dev into the new root; a
# machine (or a chroot in it) that cannot mount cannot make one.
mkdir "$tmp/probe"
if ! mount -t proc proc "$tmp/probe" 2>"$tmp/probe.err"; then
  skip_unsupported "cannot mount here ($(cat "$tmp/probe.err")): mmdebstrap cannot make a root"
fi
umount "$tmp/probe"

t0=$SECONDS
step ()
{
  echo "[$((SECONDS - t0)) s] $*"
}

# 1. Build (tests/debbuild.sh: once per tree, shared with
# test-systemd-boot.py), from a copy with no build products in it.
step "dpkg-buildpackage -us -uc -b (tests/debbuild.sh)"
debs=$("$srcdir/debbuild.sh")
ls "$debs"/*.deb
version=$(cat "$debs/version")
deb ()
{
  local f=$debs/${1}_${version}_$(dpkg --print-architecture).deb
  [ -f "$f" ] || fail "package $1 was not built"
  echo "$f"
}

# Every package the control file lists was built (vmhost-cli once cli/ is
# in the tree).
for p in $(sed -n 's/^Package: //p' "$debs/control"); do
  if [ "$p" = vmhost-cli ] && [ ! -f "$debs/has-cli" ]; then
    continue
  fi
  deb "$p" >/dev/null
done

# 2. lintian: errors fail, warnings are listed.
step "lintian"
lintian --fail-on error --tag-display-limit 0 "$debs"/vmhost_*.changes \
  >"$tmp/lintian.log" 2>&1 || fail "lintian: $(cat "$tmp/lintian.log")"
grep -E '^[EW]: ' "$tmp/lintian.log" | sed 's/^/lintian: /' || true

# 3. Dependencies: the libraries of the plugin, no other plugin's.
depends ()
{
  dpkg-deb -f "$(deb "$1")" Depends
}
others='libvirt0|librbd1|librados2|libnfs13|libiscsi7|libnl-route-3-200|libnftables1|libprotobuf-c1|libisofs6'
depends vmhostd | grep -qE "$others" && fail "vmhostd depends on a plugin's library: $(depends vmhostd)"
for p in rest local; do
  d=$(depends vmhost-plugin-$p)
  echo "vmhost-plugin-$p: Depends: $d"
  echo "$d" | grep -qE "$others" && fail "vmhost-plugin-$p depends on another plugin's library: $d"
done
depends vmhost-plugin-rest | grep -q libnghttp2 || fail "vmhost-plugin-rest lacks libnghttp2 in Depends"
depends vmhost-plugin-libvirt | grep -q libvirt0 || fail "vmhost-plugin-libvirt lacks libvirt0 in Depends"

# 4. A fresh Debian 12 root with the three packages, installed by apt from
# the .deb files (their dependencies from the mirror).  The machine's apt
# configuration (a proxy, say) and sources go along.
step "mmdebstrap with vmhostd, vmhost-plugin-rest, vmhost-plugin-local, vmhost-agent-dist"
root=$tmp/root
mkdir "$tmp/install"
cp "$(deb vmhostd)" "$(deb vmhost-plugin-rest)" "$(deb vmhost-plugin-local)" \
  "$(deb vmhost-agent-dist)" "$tmp/install/"
# With the client once the tree has it: the operator's three packages.
cli=
if [ -f "$debs/has-cli" ]; then
  cli=yes
  cp "$(deb vmhost-cli)" "$tmp/install/"
fi
# This machine's sources (the files themselves: mmdebstrap reads them);
# none found, mmdebstrap's default mirror.
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
  /etc/apt/sources.list.d/*.list; do
  [ -s "$f" ] && sources+=("$f")
done
mmdebstrap --variant=apt --include=ca-certificates \
  --setup-hook='mkdir -p "$1/etc/apt/apt.conf.d" && cp -n /etc/apt/apt.conf.d/* "$1/etc/apt/apt.conf.d/"' \
  --customize-hook="mkdir \"\$1/tmp/debs\" && cp $tmp/install/*.deb \"\$1/tmp/debs/\"" \
  --customize-hook='chroot "$1" sh -c "apt-get install -y -q --no-install-recommends /tmp/debs/*.deb && rm -r /tmp/debs"' \
  bookworm "$root" "${sources[@]}" >"$tmp/mmdebstrap.log" 2>&1 ||
  fail "mmdebstrap failed: $(tail -40 "$tmp/mmdebstrap.log")"
step "root made"
# As on the new machine: nothing of this build's environment
# (VMHOST_PLUGIN_DIR above all).
in_root ()
{
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$root" "$@"
}
in_root dpkg-query -W vmhostd vmhost-plugin-rest vmhost-plugin-local vmhost-agent-dist \
  ${cli:+vmhost-cli} ||
  fail "the packages are not installed in the new root"
if in_root dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' 'libvirt*' 'librbd*' \
  'libnfs*' 'libiscsi*' 2>/dev/null | grep 'ii'; then
  fail "installing vmhostd, rest, local (and the client) pulled a library of another plugin"
fi

# 5. The installed daemon, from the installed config.
plugindir=$(in_root sh -c 'echo /usr/lib/*/vmhost/plugins')
in_root ls "$plugindir" | sort >"$tmp/plugins"
printf '%s\n' frontend-rest.so hypervisor-mock.so network-mock.so storage-local.so \
  storage-mock.so >"$tmp/want"
diff -u "$tmp/want" "$tmp/plugins" || fail "the plugin directory holds other plugins than the installed ones"
for so in $(cat "$tmp/plugins"); do
  in_root vmhostd --dump-plugin "$plugindir/$so" >"$tmp/dump" 2>&1 ||
    fail "the installed $so does not load: $(cat "$tmp/dump")"
done

conf=/etc/vmhost/vmhostd.yaml
assert_grep -F 'state_dir: /var/lib/vmhost' "$root$conf"
for page in man8/vmhostd.8 man5/vmhostd.yaml.5; do
  [ -f "$root/usr/share/man/$page.gz" ] || fail "no $page installed"
done
[ -f "$root/lib/systemd/system/vmhostd.service" ] || fail "no vmhostd.service installed"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
tls_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i -e "s/127\.0\.0\.1:8080/127.0.0.1:$port/" -e "s/127\.0\.0\.1:8443/127.0.0.1:$tls_port/" "$root$conf"
assert_grep -F "127.0.0.1:$port" "$root$conf"

cat >"$tmp/vmhostd-in-root" <<EOS
#!/bin/sh
exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$root" /usr/sbin/vmhostd "\$@"
EOS
chmod +x "$tmp/vmhostd-in-root"
VMHOSTD=$tmp/vmhostd-in-root

# The installed config checks, the missing rpc plugin named (it is
# optional there).
run_vmhostd --check-config --config "$conf"
[ "$rc" = 0 ] || fail "--check-config of the installed config: exit $rc: $(cat "$err")"

step "starting the installed vmhostd"
start_vmhostd "$conf"
assert_grep -F "optional frontend 'rpc' is not used" "$vmhostd_log"
assert_grep -F "no plugin 'rpc' (kind frontend); available: rest" "$vmhostd_log"
curl -sS --max-time 30 "http://127.0.0.1:$port/healthz" >"$tmp/health" ||
  fail "no answer from the installed vmhostd on port $port"
assert_grep -F '"status":"alive"' "$tmp/health"
# Degraded (rpc is missing) but ready: it is optional.
curl -sS --max-time 30 "http://127.0.0.1:$port/readyz" >"$tmp/ready" ||
  fail "no readiness from the installed vmhostd"
assert_grep -F '"status":"ready"' "$tmp/ready"
# The API wants credentials: the admin token the first start wrote.
token=$(cat "$root/var/lib/vmhost/auth/admin.token") ||
  fail "the installed vmhostd wrote no admin token"
curl -sS --max-time 30 -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$port/api/v1/host/health" >"$tmp/health" ||
  fail "GET /api/v1/host/health failed"
assert_grep -F '"name":"rest"' "$tmp/health"
curl -sS --max-time 30 -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$port/api/v1/plugins" >"$tmp/plugins.json" ||
  fail "GET /api/v1/plugins failed"
python3 - "$tmp/plugins.json" <<'EOP' || fail "GET /api/v1/plugins: $(cat "$tmp/plugins.json")"
import json, sys
got = sorted((p["kind"], p["name"]) for p in json.load(open(sys.argv[1]))["plugins"])
want = [("frontend", "rest"), ("hypervisor", "mock"), ("network", "mock"),
        ("storage", "mock")]
if got != want:
    sys.exit(f"loaded plugins {got}, expected {want}")
EOP
# The agent of vmhost-agent-dist, served by the installed rest front-end
# from its default agent.paths without credentials: the binary, and the
# vmhost-agent package of this build.
arch=$(dpkg --print-architecture)
agent=http://127.0.0.1:$port/api/v1/agent
curl -sSf --max-time 30 -o "$tmp/agent.bin" "$agent/linux/$arch" ||
  fail "GET /api/v1/agent/linux/$arch from the installed vmhostd failed"
cmp "$tmp/agent.bin" "$root/usr/lib/vmhost/agent/linux/$arch" ||
  fail "/api/v1/agent/linux/$arch is not vmhost-agent-dist's binary"
curl -sSf --max-time 30 -o "$tmp/agent.deb" "$agent/linux/$arch.deb" ||
  fail "GET /api/v1/agent/linux/$arch.deb from the installed vmhostd failed"
cmp "$tmp/agent.deb" "$(deb vmhost-agent)" ||
  fail "/api/v1/agent/linux/$arch.deb is not the vmhost-agent package"
# The arm64 agent, cross-compiled where the cross compiler is (an amd64
# machine that ran install-deps.sh): served too, and its arm64 package.
if [ "$arch" != arm64 ] && command -v aarch64-linux-gnu-gcc >/dev/null; then
  a64=$root/usr/lib/vmhost/agent/linux/arm64
  [ -f "$a64" ] || fail "vmhost-agent-dist ships no linux/arm64"
  readelf -h "$a64" | grep -q AArch64 || fail "linux/arm64 is not AArch64"
  curl -sSf --max-time 30 -o "$tmp/agent64.bin" "$agent/linux/arm64" &&
    cmp "$tmp/agent64.bin" "$a64" || fail "/api/v1/agent/linux/arm64 differs"
  curl -sSf --max-time 30 -o "$tmp/agent64.deb" "$agent/linux/arm64.deb" ||
    fail "GET /api/v1/agent/linux/arm64.deb failed"
  [ "$(dpkg-deb -f "$tmp/agent64.deb" Package Architecture | tr '\n' ' ')" = \
    "Package: vmhost-agent Architecture: arm64 " ] ||
    fail "linux/arm64.deb: $(dpkg-deb -f "$tmp/agent64.deb")"
  dpkg-deb --fsys-tarfile "$tmp/agent64.deb" |
    tar -xO ./usr/sbin/vmhost-agent | cmp - "$a64" ||
    fail "the arm64 package's vmhost-agent is not the arm64 agent"
fi
curl -sSf --max-time 30 -o "$tmp/install.sh" "$agent/install.sh" ||
  fail "GET /api/v1/agent/install.sh failed"
sh -n "$tmp/install.sh" || fail "the installed node's install.sh does not parse"
assert_grep -F "$(sha256sum "$tmp/agent.deb" | cut -d ' ' -f 1)" "$tmp/install.sh"

# The installed client against the installed daemon: a VM on the mocks.
if [ -n "$cli" ]; then
  ctl ()
  {
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin VMHOST_URL="http://127.0.0.1:$port" \
      VMHOST_TOKEN="$token" chroot "$root" vmhostctl "$@"
  }
  ctl vm create web1 --vcpus 1 --memory 256M --disk vda,size=1G,pool=pool0 \
    --nic net0,network=net0 >"$tmp/ctl.out" 2>&1 ||
    fail "vmhostctl vm create: $(cat "$tmp/ctl.out")"
  ctl vm list >"$tmp/ctl.out" 2>&1 || fail "vmhostctl vm list: $(cat "$tmp/ctl.out")"
  assert_grep -F web1 "$tmp/ctl.out"
  [ -f "$root/usr/share/man/man1/vmhostctl.1.gz" ] || fail "no vmhostctl(1) installed"
fi
stop_vmhostd || fail "vmhostd exited $? after SIGTERM"

# The local plugin, installed, takes a pool; libvirt, not installed, is
# refused by name.
cat >"$root/etc/vmhost/local.yaml" <<EOS
daemon: { state_dir: /var/lib/vmhost }
storage:
  - { name: local0, plugin: local, path: /var/lib/vmhost/pools/local0 }
EOS
run_vmhostd --check-config --config /etc/vmhost/local.yaml
[ "$rc" = 0 ] || fail "a local pool: exit $rc: $(cat "$err")"
cat >"$root/etc/vmhost/libvirt.yaml" <<EOS
daemon: { state_dir: /var/lib/vmhost }
hypervisors:
  - { name: hv0, plugin: libvirt }
EOS
run_vmhostd --check-config --config /etc/vmhost/libvirt.yaml
[ "$rc" = 2 ] || fail "a libvirt hypervisor without its package: exit $rc, expected 2"
assert_grep -F "hypervisor 'hv0': no plugin 'libvirt' (kind hypervisor); available: mock" "$err"
step "done"
