#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build libopenvswitch (static, PIC) and its OVSDB C IDL from Debian's
# openvswitch-source and install it where configure finds it: Debian 12
# ships no libopenvswitch-dev.  Called by install-deps.sh; the OVS network
# plugin (plugins/network/ovs) links it.
#
#   packaging/build-libopenvswitch.sh [PREFIX]    default /usr/local/lib/vmhost-ovs
#
# Installs PREFIX/{lib/libopenvswitch.a, include/...} and
# /usr/local/lib/pkgconfig/openvswitch-idl.pc (Cflags name PREFIX's private
# include directories: OVS's lib/ holds stdio.h and string.h wrappers that
# must never be on a global include path).  Idempotent: a stamp in PREFIX
# records the source package's version and this script's checksum; when
# both match, nothing is done (a few milliseconds).  A fresh build takes
# about 80 s on two cores.
set -euo pipefail

PREFIX=${1:-/usr/local/lib/vmhost-ovs}
PCDIR=${PCDIR:-/usr/local/lib/pkgconfig}
TARBALL=/usr/src/openvswitch/openvswitch.tar.gz
JOBS=${JOBS:-2}

[ -f "$TARBALL" ] || { echo "$0: $TARBALL missing (apt-get install openvswitch-source)" >&2; exit 1; }
want="$(dpkg-query -W -f='${Version}' openvswitch-source) $(sha256sum "$0" | cut -d' ' -f1)"
if [ -f "$PREFIX/.stamp" ] && [ "$(cat "$PREFIX/.stamp")" = "$want" ] &&
   [ -f "$PCDIR/openvswitch-idl.pc" ]; then
  echo "build-libopenvswitch: $PREFIX is up to date ($want)"
  exit 0
fi

work=$(mktemp -d /tmp/vmhost-ovs-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
tar xzf "$TARBALL"
cd openvswitch*/
echo "build-libopenvswitch: configure"
# Only the library: no SSL, libcap-ng, AF_XDP or unbound; PIC, because the
# archive goes into a plugin's shared object.  PYTHON3 pinned: the IDL
# generator (ovsdb-idlc) is Python and uses the in-tree python/ovs.
./configure -q PYTHON3=/usr/bin/python3 --prefix="$PREFIX" \
  --localstatedir=/var --sysconfdir=/etc --with-rundir=/var/run/openvswitch \
  --with-dbdir=/etc/openvswitch --disable-ssl --disable-libcapng \
  --disable-afxdp --disable-shared --with-pic >/dev/null
echo "build-libopenvswitch: make (about a minute)"
# An explicit target does not make automake's BUILT_SOURCES: generate the
# headers libopenvswitch needs first.
make -s -j"$JOBS" include/odp-netlink.h include/odp-netlink-macros.h \
  lib/vswitch-idl.h lib/vswitch-idl.c lib/ovsdb-server-idl.h lib/ovsdb-server-idl.c
make -s -j"$JOBS" lib/libopenvswitch.la >/dev/null

rm -rf "$PREFIX.new"
mkdir -p "$PREFIX.new/lib" "$PREFIX.new/include/openvswitch" \
  "$PREFIX.new/include/openflow" "$PREFIX.new/include/ovs/lib"
install -m644 lib/.libs/libopenvswitch.a "$PREFIX.new/lib/"
strip --strip-debug "$PREFIX.new/lib/libopenvswitch.a"
install -m644 include/openvswitch/*.h "$PREFIX.new/include/openvswitch/"
install -m644 include/openflow/*.h "$PREFIX.new/include/openflow/"
# Not installed by upstream, needed by the C IDL: config.h and lib/*.h.
install -m644 config.h "$PREFIX.new/include/ovs/"
install -m644 lib/*.h "$PREFIX.new/include/ovs/lib/"
version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"/\1/p' config.h)
printf '%s\n' "$want" > "$PREFIX.new/.stamp"
rm -rf "$PREFIX"
mv "$PREFIX.new" "$PREFIX"
mkdir -p "$PCDIR"
cat > "$PCDIR/openvswitch-idl.pc.tmp" <<EOC
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: openvswitch-idl
Description: Open vSwitch library and OVSDB C IDL (vswitch-idl), static, from openvswitch-source
Version: $version
Cflags: -I\${includedir} -I\${includedir}/ovs -I\${includedir}/ovs/lib
Libs: \${libdir}/libopenvswitch.a -latomic -lm -lpthread
EOC
mv "$PCDIR/openvswitch-idl.pc.tmp" "$PCDIR/openvswitch-idl.pc"
echo "build-libopenvswitch: installed $version in $PREFIX"
