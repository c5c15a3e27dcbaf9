#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The libvirt plugin's XML for every disk source type (file, block, rbd with
# monitors and a secret, iscsi with CHAP, nfs), every NIC binding type
# (bridge, OVS with interface-id and VLAN, tap), direct kernel boot, UEFI,
# metadata, the guest channel and the cloud-init seed: each file valid for virt-xml-validate
# (domain, domainsnapshot, secret; hot-plug disks inside a minimal domain),
# and each domain also accepted by libvirt's own parser (test driver).
. "$srcdir/functions.sh"
requires virt-xml-validate
tmpdir

"$builddir/libvirt-xmlgen" "$tmp" --define || fail "libvirt-xmlgen failed"

n=0
for f in "$tmp"/*.xml; do
  base=$(basename "$f" .xml)
  case $base in
    snapshot) schema=domainsnapshot ;;
    secret-*) schema=secret ;;
    device-*)
      # A device has no schema of its own: validate it in a domain.
      { printf "<domain type='kvm'><name>d</name><memory>65536</memory>"
        printf "<os><type>hvm</type></os><devices>"
        cat "$f"
        printf "</devices></domain>\n"; } > "$tmp/wrapped-$base.xml.in"
      f="$tmp/wrapped-$base.xml.in"; schema=domain ;;
    *) schema=domain ;;
  esac
  virt-xml-validate "$f" "$schema" > "$tmp/validate.out" 2>&1 ||
    fail "$base is not a valid $schema:
$(cat "$tmp/validate.out")
$(cat "$f")"
  n=$((n + 1))
done

# What the files must say, beyond being valid.
assert_grep -F "<source protocol=\"rbd\" name=\"rbd/web-1-vda\">" "$tmp/disk-rbd.xml"
assert_grep -F "<host name=\"fd00::2\" port=\"6789\"/>" "$tmp/disk-rbd.xml"
assert_grep -F "<secret type=\"ceph\" usage=\"vmhost-" "$tmp/disk-rbd.xml"
assert_grep -F "<usage type=\"ceph\">" "$tmp/secret-disk-rbd.xml"
assert_grep -F "name=\"iqn.2024-01.org.example:storage.web/1\"" "$tmp/disk-iscsi.xml"
assert_grep -F "<secret type=\"iscsi\"" "$tmp/disk-iscsi.xml"
assert_grep -F "<source protocol=\"nfs\" name=\"/export/vms/web-1/vda.raw\">" "$tmp/disk-nfs.xml"
assert_grep -F "<source dev=\"/dev/mapper/vg0-web1\"/>" "$tmp/disk-block.xml"
assert_grep -F "web 1 &amp; &lt;vda&gt;.qcow2" "$tmp/disk-file.xml"
assert_grep -F "<driver name=\"qemu\" type=\"qcow2\"/>" "$tmp/disk-file.xml"
assert_grep -F "<boot order=\"1\"/>" "$tmp/disk-file.xml"
assert_grep -F "<virtualport type=\"openvswitch\">" "$tmp/nics-kernel.xml"
assert_grep -F "interfaceid=\"8a5d2f0e-1c3b-4a6d-9e7f-0b1c2d3e4f50\"" "$tmp/nics-kernel.xml"
assert_grep -F "<tag id=\"42\"/>" "$tmp/nics-kernel.xml"
assert_grep -F "<interface type=\"ethernet\">" "$tmp/nics-kernel.xml"
assert_grep -F "<target dev=\"vmhtap0\" managed=\"no\"/>" "$tmp/nics-kernel.xml"
assert_grep -F "<mtu size=\"9000\"/>" "$tmp/nics-kernel.xml"
assert_grep -F "<model type=\"e1000\"/>" "$tmp/nics-kernel.xml"
assert_grep -F "console=ttyS0 x=&quot;a b&quot; &lt;&amp;&gt;" "$tmp/nics-kernel.xml"
assert_grep -F "ops &lt;&amp;'&quot;&gt;" "$tmp/nics-kernel.xml"
assert_grep -F "name=\"org.vmhost.agent.0\"" "$tmp/nics-kernel.xml"
assert_grep -F "<os firmware=\"efi\">" "$tmp/uefi.xml"
assert_grep -F "<disk type=\"file\" device=\"cdrom\">" "$tmp/cloud-init.xml"
assert_grep -F ".seed.iso\"/>" "$tmp/cloud-init.xml"
assert_grep -F "<target dev=\"sdb\" bus=\"sata\"/>" "$tmp/cloud-init.xml"
assert_grep -F "<type machine=\"q35\">hvm</type>" "$tmp/disk-file-kvm.xml"
assert_grep -F "<domain type=\"kvm\">" "$tmp/disk-file-kvm.xml"
[ "$n" -ge 20 ] || fail "only $n files validated"
echo "$n files valid"
