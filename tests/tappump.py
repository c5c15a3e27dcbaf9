#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A hypervisor's NIC, played by a test: copy frames between a tap (opened
by name, as QEMU or Cloud Hypervisor open the tap a network plugin made)
and an interface (through a packet socket) until killed.

    tappump.py TAP IFACE        prints "pumping" once both are open

The network tests wire IFACE (one end of a veth pair) to a "guest"
namespace, so that a namespace behaves as a VM behind the plugin's tap.
start() runs it in a namespace and waits for it to be ready.
"""
import fcntl
import os
import select
import socket
import struct
import subprocess
import sys

PACKET_OUTGOING = 4


def pump(tap, iface):
    TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", tap.encode(), IFF_TAP | IFF_NO_PI))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((iface, 0))
    print("pumping", flush=True)
    while True:
        r, _, _ = select.select([fd, s], [], [])
        if fd in r:
            s.send(os.read(fd, 65536))
        if s in r:
            data, addr = s.recvfrom(65536)
            if addr[2] != PACKET_OUTGOING:  # our own sends, seen again
                os.write(fd, data)


def start(ns, tap, iface):
    """A pump in namespace ns, ready; the caller kills and waits for it."""
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                          os.path.abspath(__file__), tap, iface],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if line != "pumping":
        p.kill()
        p.wait()
        raise RuntimeError(f"pump for {tap} did not start")
    return p


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: tappump.py TAP IFACE")
    pump(sys.argv[1], sys.argv[2])
