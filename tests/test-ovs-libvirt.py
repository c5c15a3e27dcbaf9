#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The libvirt plugin's interface XML for a real OVS binding: the OVS
plugin (binding: ovs) binds a NIC on a private ovsdb-server
(tests/ovsenv.py, no vswitchd needed: wait_vswitchd: false), and the
binding vmhostd hands out is written by the libvirt plugin's XML writer
(libvirt-xmlgen --ovs), checked against libvirt's schema
(virt-xml-validate) and defined on libvirt's test driver."""
import vmhtest
import ovsenv

ovsenv.require()
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

from vmhtest import BUILDDIR, Daemon, check, fail, vm_spec  # noqa: E402

if shutil.which("virt-xml-validate") is None:
    vmhtest.skip("virt-xml-validate not found (libvirt-clients)")


def main(tmp):
    ovs = ovsenv.Ovs(tmp, None)  # no ovs-vswitchd: no namespace
    try:
        ovs.start_db()
        with Daemon(ovsenv.config(f"""  - name: lan
    plugin: ovs
    ovsdb: {ovs.remote}
    bridge: vmhlv0
    wait_vswitchd: false
    vlan: 42
    mtu: 9000""")) as d:
            spec = vm_spec("vm-a")
            spec["nics"][0]["mac"] = "52:54:00:12:34:56"
            b = d.ok(op="vm_create", spec=spec)["vms"][0]["nics"][0]["binding"]
            check(d.stop() == 0, "SIGTERM: exit 0")
    finally:
        ovs.close()
    check(b["type"] == "ovs" and b["vlan"] == 42 and b["mtu"] == 9000, b)
    out = os.path.join(tmp, "xml")
    os.mkdir(out)
    r = subprocess.run([os.path.join(BUILDDIR, "libvirt-xmlgen"), out, "--define",
                        "--ovs", b["bridge"], b["port"], b["interface_id"],
                        b["mac"], str(b["vlan"])], capture_output=True, text=True)
    check(r.returncode == 0, "libvirt-xmlgen (define on test:///default):", r.stderr)
    for name in ("ovs.xml", "ovs-kvm.xml"):
        path = os.path.join(out, name)
        v = subprocess.run(["virt-xml-validate", path, "domain"],
                           capture_output=True, text=True)
        with open(path) as f:
            xml = f.read()
        check(v.returncode == 0, name, "is not valid:", v.stdout, v.stderr, xml)
        for want in ('<source bridge="vmhlv0"/>', '<virtualport type="openvswitch">',
                     f'interfaceid="{b["interface_id"]}"', f'<target dev="{b["port"]}"/>',
                     '<tag id="42"/>', '<mac address="52:54:00:12:34:56"/>'):
            if want not in xml:
                fail(name, "lacks", want, xml)


tmp = tempfile.mkdtemp(prefix="vmhtest-ovs.")
try:
    main(tmp)
finally:
    subprocess.run(["rm", "-rf", tmp])
