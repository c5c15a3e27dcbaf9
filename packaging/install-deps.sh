#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Install every package needed to build vmhost and run its whole test suite
# on Debian 12 (bookworm).  Idempotent: installs only what is missing and
# refreshes the package lists only when they are stale or a package has no
# install candidate.  Run as root, or as a user with sudo.
#
#   packaging/install-deps.sh          install what is missing
#   packaging/install-deps.sh --list   print the package list and exit
#
# Add a package: one line in PACKAGES below, with what needs it.
set -euo pipefail

PACKAGES=(
  # build
  build-essential     # gcc, g++, make, libc headers
  clang               # tests/test-fuzz.sh, make -C agent fuzz: libFuzzer harnesses
  libclang-rt-14-dev  # clang's libFuzzer, ASan and UBSan runtimes for them
  autoconf
  automake
  libtool
  pkg-config
  libyaml-dev         # core: config file; its .a: the static vmhost-agent
  libjansson-dev      # core: state files, JSON logs
  libcurl4-gnutls-dev # storage/local: image downloads; hypervisor/cloud-hypervisor: its REST API; frontend/cluster: etcd
  libgnutls28-dev     # core: token hashes; storage/local: SHA-256 of images; frontend/rest: TLS
  libnl-route-3-dev   # network/bridge, network/nat: netlink
  libnftables-dev     # network/nat: nftables rules
  librbd-dev          # storage/rbd: librbd and librados
  libvirt-dev         # hypervisor/libvirt
  libxml2-dev         # hypervisor/libvirt: domain XML writer
  libisofs-dev        # hypervisor/libvirt, cloud-hypervisor: cloud-init seed images (ISO 9660)
  libiscsi-dev        # storage/iscsi: the iSCSI initiator
  libnfs-dev          # storage/nfs: NFS client
  xorriso             # hypervisor/libvirt tests: read the seed images back
  libnghttp2-dev      # frontend/rest: HTTP/2
  libhttp-parser-dev  # frontend/rest: HTTP/1.1 (bookworm has no llhttp)
  protobuf-c-compiler # frontend/rpc, guest: protoc-c generates the C of proto/
  libprotobuf-c-dev   # frontend/rpc, guest: protobuf-c (its .a: the static vmhost-agent)
  zlib1g-dev          # frontend/rpc: gzip message compression
  libvirt-clients     # hypervisor/libvirt tests: virsh, virt-xml-validate
  libvirt-daemon-driver-qemu  # hypervisor/libvirt tests: qemu:///embed
  libvirt-daemon-system       # the libvirt-qemu user the QEMU driver needs
  libvirt-daemon-system-sysv  # (its init scripts: no systemd upgrade)
  libxml2-utils       # xmllint, used by virt-xml-validate
  libtirpc-dev        # --enable-sanitizers: vmhostd links libtirpc (configure.ac)
  openvswitch-source  # network/ovs: libopenvswitch, built by build-libopenvswitch.sh
  qemu-system-x86     # hypervisor/libvirt tests, test-systemd-boot.py: a real guest (TCG)
  linux-image-amd64   # hypervisor/libvirt tests: the guest's kernel
  cpio                # hypervisor/libvirt tests: the guest's initramfs
  # run time of plugins (and their tests)
  qemu-utils          # storage/local: qemu-img
  qemu-block-extra    # storage/nfs: qemu-img's and QEMU's nfs:// driver
  dnsmasq-base        # network/nat: DHCP and DNS
  nftables            # network/nat tests: nft list ruleset
  openvswitch-switch  # network/ovs tests: ovsdb-server, ovs-vswitchd, ovs-vsctl
  iproute2            # network tests: ip netns, veth
  mount               # storage/local tests: tmpfs pools
  nfs-ganesha         # storage/nfs tests: the NFS server (pulls rpcbind)
  nfs-ganesha-vfs     # storage/nfs tests: its FSAL_VFS
  libnfs-utils        # storage/nfs tests: nfs-ls, nfs-cat
  ceph-mon            # storage/rbd tests: a throwaway Ceph monitor
  ceph-osd            # storage/rbd tests: its OSD (memstore)
  ceph-common         # storage/rbd tests and bench: ceph, rbd, ceph-authtool
  busybox-static      # network/nat tests: udhcpc; libvirt tests: the guest's /init
  tgt                 # storage/iscsi tests: the iSCSI target (tgtd, tgtadm)
  libiscsi-bin        # storage/iscsi tests and bench: iscsi-ls, iscsi-inq
  qemu-block-extra    # storage/iscsi, storage/rbd guest tests: QEMU's libiscsi and rbd drivers
  etcd-server         # frontend/cluster tests and bench: a throwaway etcd (3.4)
  # tests
  curl                # frontend/rest tests: HTTP/2, h2c, HTTPS clients; cloud-hypervisor bench
  nghttp2-client      # frontend/rest tests: nghttp; bench: h2load
  openssl             # frontend/rest tests: CAs and client certificates
  python3-yaml        # frontend/rest tests: reading openapi.yaml
  python3-jsonschema  # frontend/rest tests: answers against openapi.yaml
  python3-h2          # frontend/rest tests: rapid reset, slow readers
  python3-cryptography  # frontend/rest tests: certificates dated in the past or future
  python3-grpcio      # frontend/rpc tests: the stock gRPC client
  python3-grpc-tools  # frontend/rpc, guest tests: stubs generated from proto/
  prometheus          # tests/test-prometheus.py: promtool check metrics
  qemu-guest-agent    # tests/bench/guest-agent.py, agent.py: qemu-ga, the reference
  python3-libvirt     # tests/bench/agent.py: qemu-ga commands through libvirt (libvirt_qemu)
  h2o                 # tests/bench/rest-h2load.py: the reference server
  libgrpc++-dev       # tests/bench/rpc-h2load.py: the reference gRPC server
  abigail-tools       # abidw: tests/test-abi-baseline.sh
  scdoc               # docs/man: the man pages' converter
  shellcheck          # tests/test-agent-dist.py: the agent's install.sh
  man-db              # tests/test-man.sh: man --warnings
  groff-base          # tests/test-man.sh: groff (man's formatter)
  systemd             # tests/test-systemd-unit.sh: systemd-analyze (not as PID 1)
  procps              # tests/test-systemd-unit.sh: /bin/kill, the unit's ExecReload
  debhelper           # tests/test-deb-install.sh: dpkg-buildpackage of packaging/debian
  dpkg-dev            # tests/test-deb-install.sh: dpkg-buildpackage
  lintian             # tests/test-deb-install.sh: the packages' checks
  mmdebstrap          # tests/test-deb-install.sh, test-systemd-boot.py: a fresh Debian 12 root
  e2fsprogs           # tests/test-systemd-boot.py: mkfs.ext4 -d, the booted root's image
  util-linux          # tests/debbuild.sh: flock (one package build at a time)
  rpm                 # tests/test-rpm-spec.sh: rpmspec, rpmbuild of packaging/vmhost.spec
  valgrind            # make check-valgrind
  qemu-user-static    # tests/test-agent-arm64.sh: runs the arm64 vmhost-agent
  python3             # tests/abi/abi-layout.py
  binutils            # nm, readelf: tests/test-loader.sh
  file
  ca-certificates
  git
)

# Packages wanted only when a command is missing: "command:package…".
# Node.js may come from elsewhere (NodeSource's nodejs bundles npm and
# conflicts with Debian's npm package), so it is asked for by command.
BY_COMMAND=(
  "npm:nodejs npm"    # frontend/rpc tests: @grpc/grpc-js smoke test
)

# The arm64 vmhost-agent, cross-compiled on amd64 (configure
# --enable-agent-arm64): the cross compiler and the arm64 static libraries
# the agent links, from the arm64 architecture dpkg is told about
# (multiarch: the :arm64 -dev packages install beside the amd64 ones, at
# the same version).
CROSS_ARM64=(
  gcc-aarch64-linux-gnu
  libc6-dev-arm64-cross
  libprotobuf-c-dev:arm64
  libyaml-dev:arm64
)
native_arch=$(dpkg --print-architecture)
if [ "$native_arch" = amd64 ]; then
  PACKAGES+=("${CROSS_ARM64[@]}")
fi

if [ "${1:-}" = --list ]; then
  printf '%s\n' "${PACKAGES[@]}"
  for e in "${BY_COMMAND[@]}"; do printf '%s\n' ${e#*:}; done
  exit 0
fi
if [ $# -ne 0 ]; then
  echo "usage: $0 [--list]" >&2
  exit 2
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=300)

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo -E)
else
  echo "$0: run as root (or install sudo): cannot install packages" >&2
  exit 1
fi

# Installed for the native architecture (or all), or for the one a name
# such as libyaml-dev:arm64 gives: with arm64 added, an unqualified
# multiarch name matches both.
installed ()
{
  local want=$native_arch
  case $1 in *:*) want=${1#*:} ;; esac
  dpkg-query -W -f='${db:Status-Abbrev}${Architecture}\n' "$1" 2>/dev/null |
    grep -qE "^ii ($want|all)\$"
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done
for e in "${BY_COMMAND[@]}"; do
  command -v "${e%%:*}" >/dev/null 2>&1 && continue
  for p in ${e#*:}; do
    installed "$p" || missing+=("$p")
  done
done

# Built from source once the packages are there (no -dev package in Debian
# 12); quick when already built.
from_source ()
{
  "${SUDO[@]}" "$(dirname "$0")/build-libopenvswitch.sh"
}

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages are installed"
  from_source
  exit 0
fi

# Refresh the lists when they are older than a day (or absent), when a
# missing package has no candidate in them, or when dpkg has just been told
# about arm64 (its lists are not there yet).
need_update=no
if [ "$native_arch" = amd64 ] &&
   ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "install-deps: dpkg --add-architecture arm64 (the arm64 agent's libraries)"
  "${SUDO[@]}" dpkg --add-architecture arm64
  need_update=yes
elif [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n 1)" ]; then
  need_update=yes
else
  for p in "${missing[@]}"; do
    cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ { print $2 }')
    if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
      need_update=yes
      break
    fi
  done
fi
if [ "$need_update" = yes ]; then
  echo "install-deps: apt-get update"
  "${SUDO[@]}" apt-get "${APT_OPTS[@]}" update -q
fi

echo "install-deps: installing ${missing[*]}"
"${SUDO[@]}" apt-get "${APT_OPTS[@]}" install -y -q --no-install-recommends \
  "${missing[@]}"

for p in "${missing[@]}"; do
  installed "$p" || { echo "install-deps: $p did not install" >&2; exit 1; }
done
from_source
echo "install-deps: done"
