#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The package split stays whole and the same in both formats: every plugin
# of configure.ac but the mocks has a Debian package (a control stanza, an
# .install file shipping its .so, its --enable in debian/rules) and an RPM
# one (%package, %files with its .so, its --enable in %build); the RPM spec
# parses (rpmspec -P) and names the same packages as debian/control.
. "$srcdir/functions.sh"
requires rpmspec
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
sed -n 's/^%package -n //p' "$spec" | sort >"$tmp/rpm"
diff -u "$tmp/deb" "$tmp/rpm" || fail "debian/control and vmhost.spec name different packages"
echo "ok: $(echo $plugins | wc -w) plugins packaged in both formats"
