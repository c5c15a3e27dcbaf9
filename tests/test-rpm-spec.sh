#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The package split stays whole and the same in both formats: every plugin
# of configure.ac but the mocks has a Debian package (a control stanza, an
# .install file shipping its .so, its --enable in debian/rules) and an RPM
# one (%package, %files with its .so, its --enable in %build); the RPM spec
# parses (rpmspec -P) and names the same packages as debian/control.  Then
# rpmbuild (Debian packages it) builds the RPMs from a tarball of this
# tree, and each plugin's RPM requires the libraries of that plugin only:
# the rest one no libvirt.  About a minute and a half.
. "$srcdir/functions.sh"
requires rpmspec rpmbuild autoreconf git
tmpdir

deb=$top_srcdir/packaging/debian
spec=$top_srcdir/packaging/vmhost.spec
rpmspec -P "$spec" >"$tmp/spec" 2>"$tmp/spec.err" ||
  fail "rpmspec -P $spec: $(cat "$tmp/spec.err")"

plugins=$(sed -n 's/^VMH_PLUGIN(\[\([a-z0-9-]*\)\].*/\1/p' "$top_srcdir/configure.ac" | grep -vx mock)
[ "$(echo "$plugins" | wc -w)" -ge 9 ] || fail "found only these plugins in configure.ac: $plugins"
for p in $plugins; do
  pkg=vmhost-plugin-$p
  dirs=$(cd "$top_srcdir/plugins" && ls -d */"$p")
  [ -n "$dirs" ] || fail "no plugins/KIND/$p directory"
  grep -qxF "Package: $pkg" "$deb/control" ||
    fail "packaging/debian/control has no 'Package: $pkg' (HACKING.md, the files a new plugin touches)"
  [ -f "$deb/$pkg.install" ] || fail "no packaging/debian/$pkg.install"
  for f in "$deb/rules" "$spec"; do
    grep -qF -e "--enable-$p=yes" "$f" || fail "${f#$top_srcdir/} does not build the plugin: no --enable-$p=yes"
  done
  grep -qxF "%package -n $pkg" "$spec" || fail "packaging/vmhost.spec has no '%package -n $pkg'"
  grep -qxF "%files -n $pkg" "$spec" || fail "packaging/vmhost.spec has no '%files -n $pkg'"
  assert_grep -F "/$p.yaml" "$deb/$pkg.install"
  # The .so of each of the plugin's directories (KIND/NAME: KIND-NAME.so).
  for d in $dirs; do
    so=${d%%/*}-${d#*/}.so
    assert_grep -F "/$so" "$deb/$pkg.install"
    awk -v pkg="$pkg" -v so="/$so" '
      /^%files/ { cur = ($0 == "%files -n " pkg) }
      cur && index($0, so) { found = 1 }
      END { exit !found }' "$spec" || fail "packaging/vmhost.spec: $so not in %files -n $pkg"
  done
done

# The same packages in both (Debian's -dev is RPM's -devel).
sed -n 's/^Package: //p' "$deb/control" | sed 's/-dev$/-devel/' | sort >"$tmp/deb"
sed -n 's/^%package -n //p' "$spec" | sort >"$tmp/rpms"
diff -u "$tmp/deb" "$tmp/rpms" || fail "debian/control and vmhost.spec name different packages"
echo "ok: $(echo $plugins | wc -w) plugins packaged in both formats"

# The RPMs, from the files git knows (committed or not), made a release
# tarball by autoreconf.  Debian has no RPM build dependencies to check
# (--nodeps) and no systemd RPM macros (the unit's directory is given).
if ! git -C "$top_srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "not a git checkout: the RPMs are not built"
  exit 0
fi
version=$(sed -n 's/^Version: *//p' "$spec")
src=$tmp/vmhost-$version
mkdir -p "$src" "$tmp/rpm/SOURCES"
git -C "$top_srcdir" ls-files -z -co --exclude-standard |
  (cd "$top_srcdir" && tar --null -T - -cf -) | tar -xf - -C "$src"
(cd "$src" && autoreconf -fi) >"$tmp/autoreconf.log" 2>&1 ||
  fail "autoreconf: $(cat "$tmp/autoreconf.log")"
tar -czf "$tmp/rpm/SOURCES/vmhost-$version.tar.gz" -C "$tmp" "vmhost-$version"
with_cli=--without
[ -f "$src/cli/Makefile.am" ] && with_cli=--with
rpmbuild -bb --nodeps "$with_cli" cli --define "_topdir $tmp/rpm" \
  --define "_unitdir /lib/systemd/system" --define "_smp_mflags -j2" \
  "$spec" >"$tmp/rpmbuild.log" 2>&1 || fail "rpmbuild: $(tail -40 "$tmp/rpmbuild.log")"
for p in $(cat "$tmp/rpms"); do
  [ "$p" = vmhost-cli ] && [ "$with_cli" = --without ] && continue
  ls "$tmp/rpm/RPMS"/*/"$p-$version"-*.rpm >/dev/null 2>&1 || fail "rpmbuild made no $p RPM"
done
requires_of ()
{
  rpm -qp --requires "$tmp/rpm/RPMS"/*/"$1-$version"-*.rpm 2>/dev/null
}
requires_of vmhost-plugin-rest >"$tmp/rest.req"
assert_grep -F 'libnghttp2.so' "$tmp/rest.req"
assert_not_grep -E 'libvirt|librbd|librados|libnfs|libiscsi' "$tmp/rest.req"
requires_of vmhostd >"$tmp/vmhostd.req"
assert_not_grep -E 'libvirt|librbd|libnghttp2|libnfs|libiscsi' "$tmp/vmhostd.req"
requires_of vmhost-plugin-libvirt >"$tmp/libvirt.req"
assert_grep -F 'libvirt.so' "$tmp/libvirt.req"
echo "ok: $(ls "$tmp/rpm/RPMS"/*/*.rpm | wc -l) RPMs built"
