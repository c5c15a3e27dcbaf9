#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The vmhost-agent package for arm64 guests, made on another architecture
# from the vmhost-agent package tree just built (debian/vmhost-agent, its
# DEBIAN/ included): the same files and scripts with the cross-compiled
# static agent (configure --enable-agent-arm64) as /usr/sbin/vmhost-agent.
# The agent is static and the package depends on nothing that has an
# architecture, so nothing else differs.  Called by debian/rules.
#
#   agent-deb-arm64.sh PACKAGE-TREE ARM64-AGENT OUTPUT.deb
set -eu
[ $# -eq 3 ] || { echo "usage: $0 PACKAGE-TREE ARM64-AGENT OUTPUT.deb" >&2; exit 2; }
src=$1 agent=$2 out=$3
tree=$(mktemp -d "${TMPDIR:-/tmp}/vmhost-agent-arm64.XXXXXX")
trap 'rm -rf "$tree"' EXIT
cp -a "$src/." "$tree/"
install -m 0755 "$agent" "$tree/usr/sbin/vmhost-agent"
size=$(du -s -k --apparent-size --exclude=DEBIAN "$tree" | cut -f 1)
sed -i -e 's/^Architecture: .*/Architecture: arm64/' \
  -e "s/^Installed-Size: .*/Installed-Size: $size/" "$tree/DEBIAN/control"
(cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' |
  sort -z | xargs -0 md5sum >DEBIAN/md5sums)
dpkg-deb --root-owner-group -Zxz --build "$tree" "$out" >/dev/null
