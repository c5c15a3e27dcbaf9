#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs vmhost-agent, the vmhost guest agent, from the vmhost node
# @NODE@ (version @VERSION@): the Debian package where dpkg is, else the
# static binary with its config (/etc/vmhost/agent.yaml, kept when there)
# and its systemd unit, enabled.  Every download is checked against the
# SHA-256 the node wrote into this script.
#
#   curl -fsSL @NODE@/api/v1/agent/install.sh | sudo sh
#
# Environment: VMHOST_ROOT=DIR installs under DIR and starts nothing;
# VMHOST_INSECURE=1 accepts a node certificate that is not trusted here
# (the downloads are still checked by their SHA-256); VMHOST_FORMAT=binary
# takes the static binary even where dpkg is.
set -eu

NODE='@NODE@'
SHA_amd64='@SHA_AMD64@'
SHA_amd64_deb='@SHA_AMD64_DEB@'
SHA_arm64='@SHA_ARM64@'
SHA_arm64_deb='@SHA_ARM64_DEB@'
ROOT=${VMHOST_ROOT:-}

die() {
	echo "vmhost-agent install: $*" >&2
	exit 1
}

say() {
	echo "vmhost-agent install: $*"
}

os=$(uname -s)
[ "$os" = Linux ] || die "no agent for $os guests, only Linux"
case $(uname -m) in
x86_64 | amd64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
*) die "no agent for the $(uname -m) architecture (amd64, arm64 only)" ;;
esac
if [ -z "$ROOT" ] && [ "$(id -u)" != 0 ]; then
	die "run as root (sudo sh)"
fi

# The SHA-256 the node gave for linux/$1 ("" when it has none).
sum_of() {
	case $1 in
	amd64) echo "$SHA_amd64" ;;
	amd64.deb) echo "$SHA_amd64_deb" ;;
	arm64) echo "$SHA_arm64" ;;
	arm64.deb) echo "$SHA_arm64_deb" ;;
	esac
}

name=$arch
if [ "${VMHOST_FORMAT:-}" != binary ] && command -v dpkg >/dev/null 2>&1; then
	if [ -n "$(sum_of "$arch.deb")" ]; then
		name=$arch.deb
	else
		say "the node has no .deb for $arch: taking the static binary"
	fi
fi
want=$(sum_of "$name")
path=/api/v1/agent/linux/$name
[ -n "$want" ] || die "the node $NODE has no agent for linux/$arch"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

download() {
	if command -v curl >/dev/null 2>&1; then
		if [ "${VMHOST_INSECURE:-}" = 1 ]; then
			curl -fsSL --insecure -o "$2" "$1"
		else
			curl -fsSL -o "$2" "$1"
		fi
	elif command -v wget >/dev/null 2>&1; then
		if [ "${VMHOST_INSECURE:-}" = 1 ]; then
			wget -q --no-check-certificate -O "$2" "$1"
		else
			wget -q -O "$2" "$1"
		fi
	else
		die "neither curl nor wget is installed"
	fi
}

sha256() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d ' ' -f 1
	elif command -v openssl >/dev/null 2>&1; then
		openssl dgst -sha256 -r "$1" | cut -d ' ' -f 1
	else
		die "neither sha256sum nor openssl is installed: cannot check the download"
	fi
}

say "downloading $NODE$path"
download "$NODE$path" "$tmp/agent" || die "cannot download $NODE$path"
got=$(sha256 "$tmp/agent")
if [ "$got" != "$want" ]; then
	die "$NODE$path has SHA-256 $got, the node said $want: not installed"
fi
say "SHA-256 verified: $want"

if [ "$name" = "$arch.deb" ]; then
	if [ -n "$ROOT" ]; then
		dpkg --root="$ROOT" -i "$tmp/agent"
	else
		dpkg -i "$tmp/agent"
	fi
	say "installed the Debian package vmhost-agent"
	exit 0
fi

mkdir -p "$ROOT/usr/sbin" "$ROOT/etc/vmhost" "$ROOT/etc/systemd/system"
install -m 0755 "$tmp/agent" "$ROOT/usr/sbin/vmhost-agent.new"
mv -f "$ROOT/usr/sbin/vmhost-agent.new" "$ROOT/usr/sbin/vmhost-agent"
if [ ! -e "$ROOT/etc/vmhost/agent.yaml" ]; then
	cat >"$ROOT/etc/vmhost/agent.yaml" <<'VMHOST_AGENT_YAML'
@AGENT_YAML@VMHOST_AGENT_YAML
fi
cat >"$ROOT/etc/systemd/system/vmhost-agent.service" <<'VMHOST_AGENT_UNIT'
@AGENT_UNIT@VMHOST_AGENT_UNIT
say "installed /usr/sbin/vmhost-agent, /etc/vmhost/agent.yaml and vmhost-agent.service"
if [ -z "$ROOT" ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload
	systemctl enable vmhost-agent.service
	systemctl restart vmhost-agent.service || say "vmhost-agent starts when its channel appears"
fi
