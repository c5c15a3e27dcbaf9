#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds this tree's Debian packages once and prints the directory that
# holds them; test-deb-install.sh and test-systemd-boot.py share it.
#
# The packages are built with `dpkg-buildpackage -us -uc -b` from a copy of
# the files git knows (committed or not, ignored ones left out), as an
# operator builds them from a clean tree.  The directory,
# $top_builddir/tests/debs/KEY, is keyed by a hash of that copy (contents,
# names and modes): a second caller on the same tree gets the same packages
# without a second build; a caller on a changed tree builds again, and the
# older trees' packages are removed.  Concurrent callers (make -j check)
# take a lock: the second waits for the first's build.
#
# The directory holds the .deb files, the .changes (for lintian), build.log,
# control (debian/control of the copy) and version (the package version).
#
# Exit status: 0 (the directory on stdout), 77 when a tool is missing
# (functions.sh's skip policy), 1 when the build fails (the end of its log
# on stderr).
. "$srcdir/functions.sh"
requires dpkg-buildpackage dh scdoc git tar flock sha256sum
if ! git -C "$top_srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  skip_unsupported "not a git checkout: the packages are built from the files git knows"
fi
tmpdir >/dev/null

# The key: the hash of the copy as a tar of fixed order, times and owners
# (names, modes, contents).  The copy itself keeps the files' times (dpkg
# takes the packaged files' times from them).  A tracked file deleted in the
# work tree is left out, as the build would.
git -C "$top_srcdir" ls-files -z -co --exclude-standard >"$tmp/files"
copy ()
{
  (cd "$top_srcdir" && tar --null -T "$tmp/files" --ignore-failed-read "$@" \
    -cf - 2>/dev/null)
}
key=$(copy --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner |
  sha256sum | cut -c 1-16)
copy >"$tmp/src.tar"

cache=$top_builddir/tests/debs
dir=$cache/$key
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$dir/done" ]; then
  echo "debbuild: the packages of this tree are built already ($dir)" >&2
  echo "$dir"
  exit 0
fi

# Only one tree's packages are kept.
find "$cache" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
mkdir -p "$dir/src"
tar -xf "$tmp/src.tar" -C "$dir/src"
[ -L "$dir/src/debian" ] || [ -d "$dir/src/debian" ] || fail "no debian/ in the tree"
echo "debbuild: dpkg-buildpackage -us -uc -b in $dir/src" >&2
start=$SECONDS
if ! (cd "$dir/src" && DEB_BUILD_OPTIONS="parallel=2 nocheck noautodbgsym" \
  dpkg-buildpackage -us -uc -b) >"$dir/build.log" 2>&1; then
  fail "dpkg-buildpackage failed: $(tail -40 "$dir/build.log")"
fi
echo "debbuild: built in $((SECONDS - start)) s" >&2
cp "$dir/src/debian/control" "$dir/control"
dpkg-parsechangelog -l "$dir/src/debian/changelog" -S Version >"$dir/version"
# Whether the client was in the tree (debian/rules packages it only then).
if [ -f "$dir/src/cli/Makefile.am" ]; then
  touch "$dir/has-cli"
fi
rm -rf "$dir/src"
touch "$dir/done"
echo "$dir"
