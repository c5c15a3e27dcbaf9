#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmhostctl's lists in pages (cli/list.c): `vm list` of more VMs than a
page follows next_page_token (pages of 500 asked, over one connection) and
prints exactly what one whole answer prints, in every output form; --limit
N stops after N (asking no more than it needs); --chunk-size picks the
page size, 0 the whole list at once; snapshot, pool, volume, image and
network lists page the same.  A walk while VMs (and volumes) are created
and deleted between its pages: nothing listed twice, nothing there
throughout lost, nothing deleted ahead of the walk listed — the changes
are made by a proxy between vmhostctl and vmhostd before it lets each
next request through."""
import ctypes
import ctypes.util
import re
import socket
import threading

from ctltest import Ctl, daemon_token
from pagetest import TWO_POOLS, churned_walk
from resttest import RestDaemon, import_h2, validate
from vmhtest import check

import_h2()  # hpack comes with it
import hpack  # noqa: E402

V = "/api/v1"
N_VMS = 1100  # three pages of 500


class PageProxy:
    """A TCP proxy in front of vmhostd (h2c) that reads the requests
    passing (HEADERS frames from the client, HPACK-decoded per connection):
    self.paths are their paths, and before(n) runs before the n-th (from
    1, in any connection) goes on, so that a test acts between pages."""

    def __init__(self, port):
        self.upstream = port
        self.errors = []
        self.reset()
        self.ls = socket.create_server(("127.0.0.1", 0))
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self, before=None):
        self.before = before or (lambda n: None)
        self.paths, self.connections = [], 0

    def close(self):
        self.ls.close()
        check(not self.errors, "proxy:", self.errors)

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    @staticmethod
    def _exact(s, n):
        data = b""
        while len(data) < n:
            more = s.recv(n - len(data))
            if not more:
                return None
            data += more
        return data

    @staticmethod
    def _hang_up(*socks):
        """Both directions of each (a recv blocked on it returns)."""
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _copy(self, src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        self._hang_up(src, dst)

    def _serve(self, c):
        u = socket.create_connection(("127.0.0.1", self.upstream))
        threading.Thread(target=self._copy, args=(u, c), daemon=True).start()
        dec = hpack.Decoder()
        held, block = b"", b""  # a HEADERS frame and its CONTINUATIONs
        try:
            preface = self._exact(c, 24)
            if preface:
                u.sendall(preface)
            while preface:
                head = self._exact(c, 9)
                body = head and self._exact(c, int.from_bytes(head[:3], "big"))
                if not head or body is None:
                    break
                kind, flags = head[3], head[4]
                if kind == 1:  # HEADERS: its padding and priority off
                    pad = body[0] if flags & 0x8 else 0
                    frag = body[(1 if flags & 0x8 else 0) +
                                (5 if flags & 0x20 else 0):len(body) - pad]
                    held, block = head + body, frag
                elif kind == 9 and held:  # CONTINUATION
                    held, block = held + head + body, block + body
                else:
                    u.sendall(head + body)
                    continue
                if flags & 0x4:  # END_HEADERS: the request is whole
                    self.paths.append(dict(dec.decode(block))[":path"])
                    self.before(len(self.paths))
                    u.sendall(held)
                    held = block = b""
        except Exception as e:  # reported by close()
            self.errors.append(repr(e))
        self._hang_up(u, c)
        u.close()
        c.close()


def libcurl_reuses_h2c():
    """libcurl before 8.0.0 cannot reuse a prior-knowledge h2c connection
    (cli/http.c): vmhostctl then opens one per call there."""
    lib = ctypes.CDLL(ctypes.util.find_library("curl") or "libcurl.so.4")
    lib.curl_version.restype = ctypes.c_char_p
    m = re.match(rb"libcurl/(\d+)\.", lib.curl_version())
    return int(m.group(1)) >= 8


# The mock hypervisor holds 1024 VMs by default.
BODY = TWO_POOLS.replace("{ name: hv0, plugin: mock }",
                         "{ name: hv0, plugin: mock, max_vms: 4096 }")
check(BODY != TWO_POOLS, "max_vms not set")
with RestDaemon(body=BODY) as d:
    ctl = Ctl(d.base, token=daemon_token(d))
    proxy = PageProxy(d.port)
    pctl = Ctl(f"http://127.0.0.1:{proxy.port}", token=daemon_token(d))
    # One connection for every page where libcurl can reuse it.
    per_page = not libcurl_reuses_h2c()

    def paged(*args, before=None):
        """vmhostctl ARGS -o json through the proxy: the answer, and the
        paths it asked for."""
        proxy.reset(before)
        got = pctl.json(*args)
        check(proxy.connections == (len(proxy.paths) if per_page else 1),
              args, "connections:", proxy.connections, proxy.paths)
        return got, proxy.paths

    def make_vm(name):
        r = d.call(op="vm_create", no_start=True,
                   spec={"name": name, "vcpus": 1, "memory": 16 << 20})
        check(r.get("code") == 0, name, r)

    def drop_vm(name):
        check(d.call(op="vm_delete", vm=name).get("code") == 0, name)

    for i in range(N_VMS):
        make_vm(f"vm-{i:04d}")
    st, _, whole = d.get(V + "/vms")
    check(st == 200 and len(whole["vms"]) == N_VMS, st)

    # ---- more than a page: three requests, one list -----------------------
    got, asked = paged("vm", "list")
    check(got == whole, "vm list differs from the whole answer")
    validate("GET", V + "/vms", 200, got)
    check(len(asked) == 3 and asked[0] == V + "/vms?limit=500" and
          all(p.startswith(V + "/vms?limit=500&page_token=")
              for p in asked[1:]), asked)
    # Every output form prints what a whole answer prints.
    for form in ("table", "yaml", "name"):
        check(ctl.ok("vm", "list", "-o", form) ==
              ctl.ok("vm", "list", "-o", form, "--chunk-size", "0"),
              form, "differs paged")
    table = ctl.ok("vm", "list").splitlines()
    check(len(table) == N_VMS + 1 and table[1].startswith("vm-0000 ") and
          table[-1].startswith(f"vm-{N_VMS - 1:04d} "), table[:2], table[-1:])
    got, asked = paged("vm", "list", "--chunk-size", "0")
    check(got == whole and asked == [V + "/vms"], "--chunk-size 0", asked)
    # Over TLS the pages share one connection whatever libcurl's version
    # (the daemon's access lines name the peer).
    mark = len(d.log())
    tctl = Ctl(d.tls_base, token=daemon_token(d))
    check(tctl.json("vm", "list", "--cacert", d.cert_path()) == whole, "TLS")
    peers = re.findall(r"access id=\S+ peer=(\S+) .* route=/api/v1/vms ",
                       d.log()[mark:])
    check(len(peers) == 3 and len(set(peers)) == 1, "TLS pages", peers)

    # ---- --limit: the first N, and no more asked than needed ------------
    for args, asks in ((("--limit", "7"), ["limit=7"]),
                       (("--limit", "7", "--chunk-size", "3"),
                        ["limit=3", "limit=3&page_token=",
                         "limit=1&page_token="]),
                       (("--limit", "600"), ["limit=500",
                                             "limit=100&page_token="]),
                       (("--limit", "5000", "--chunk-size", "0"),
                        ["limit=1000", "limit=1000&page_token="])):
        n = min(int(args[1]), N_VMS)
        got, asked = paged("vm", "list", *args)
        check(got == {"vms": whole["vms"][:n]}, args)
        check(len(asked) == len(asks) and
              all(p.startswith(V + "/vms?" + a) for p, a in zip(asked, asks)),
              args, asked)
    # Filters go with every page.
    got, asked = paged("vm", "list", "--state", "stopped", "--chunk-size",
                       "400", "--limit", "450")
    check(got == {"vms": whole["vms"][:450]}, "filtered pages")
    check(len(asked) == 2 and all("state=stopped" in p for p in asked), asked)
    for args, what in ((("--limit", "0"), "--limit '0'"),
                       (("--limit", "x"), "--limit 'x'"),
                       (("--chunk-size", "1001"), "--chunk-size '1001'"),
                       (("--chunk-size", "-1"), "--chunk-size '-1'")):
        line = ctl.error(2, None, "vm", "list", *args)
        check(what in line, args, line)

    # ---- VMs created and deleted between the pages -----------------------
    # The walk's pages of 100 are in creation order; before each next page
    # the proxy deletes the VM the last page ended with (the token's
    # anchor) and the first one not listed yet, and creates one.
    order = [v["name"] for v in whole["vms"]]  # every VM made, in order
    alive = set(order)
    stable, gone_ahead, made, anchors = set(order), set(), set(), set()
    walk = {"at": -1}  # the index in order of the last VM listed

    def between_vm_pages(n):
        # The page the daemon answered last: the next 100 still there.
        page = [x for x in order[walk["at"] + 1:] if x in alive][:100]
        if n < 2 or not page:
            return
        walk["at"] = order.index(page[-1])
        ahead = [x for x in order[walk["at"] + 1:] if x in alive][:1]
        for x in [page[-1]] + ahead:
            drop_vm(x)
            alive.discard(x)
            stable.discard(x)
        gone_ahead.update(ahead)
        anchors.add(page[-1])
        make_vm(f"new-{n}")
        order.append(f"new-{n}")
        alive.add(f"new-{n}")
        made.add(f"new-{n}")

    got, asked = paged("vm", "list", "--chunk-size", "100",
                       before=between_vm_pages)
    names = [v["name"] for v in got["vms"]]
    check(len(asked) >= 11 and len(gone_ahead) >= 10, asked, gone_ahead)
    check(len(names) == len(set(names)), "listed twice",
          sorted(x for x in set(names) if names.count(x) > 1))
    check(stable <= set(names), "lost", sorted(stable - set(names)))
    check(not gone_ahead & set(names), "listed after its delete",
          sorted(gone_ahead & set(names)))
    check(anchors <= set(names), "an anchor lost", anchors - set(names))
    check(set(names) - stable - anchors <= made, "listed, never made",
          set(names) - stable - anchors - made)
    check(names == [x for x in order if x in set(names)], "creation order")

    # ---- the other lists page the same ------------------------------------
    vols = [f"v-{i:03d}" for i in range(25)]
    for v in vols:
        d.ok("POST", V + "/storage/pools/pool0/volumes",
             {"name": v, "size": 1 << 20}, status=201)
    for i in range(3):
        d.ok("POST", V + "/vms/vm-0001/snapshots", {"name": f"s-{i}"},
             status=201)
    for pool, names in (("pool0", ("img-c", "img-a", "img-b")),
                        ("pool1", ("img-z",))):
        for name in names:  # the mock pools download nothing
            d.ok("POST", V + f"/storage/pools/{pool}/images",
                 {"name": name, "url": "https://example.com/" + name,
                  "sha256": "ab" * 32}, status=201)
    for args, path, key in ((("volume", "list", "pool0"),
                             "/storage/pools/pool0/volumes", "volumes"),
                            (("pool", "list"), "/storage/pools", "pools"),
                            (("network", "list"), "/networks", "networks"),
                            (("vm", "snapshot", "list", "vm-0001"),
                             "/vms/vm-0001/snapshots", "snapshots"),
                            (("image", "list", "pool0"),
                             "/storage/pools/pool0/images", "images")):
        st, _, api = d.get(V + path)
        check(st == 200, path, api)
        for chunk in ("1", "2", "500", "0"):
            got, asked = paged(*args, "--chunk-size", chunk)
            check(got == api, args, chunk, got, api)
            n = len(api[key])
            check(len(asked) == (1 if chunk == "0" else
                                 max(1, -(-n // int(chunk)))) and
                  (chunk == "0") == (asked[0] == V + path), args, chunk,
                  asked)
        got, asked = paged(*args, "--limit", "1", "--chunk-size", "1")
        check(got == {key: api[key][:1]} and len(asked) == 1, args, asked)
    check(len(d.get(V + "/vms/vm-0001/snapshots")[2]["snapshots"]) == 3)
    check(len(d.get(V + "/networks")[2]["networks"]) == 2)
    check([i["name"] for i in d.get(V + "/storage/pools/pool0/images")[2]
           ["images"]] == ["img-a", "img-b", "img-c"], "images by name")
    # Every pool's images: each pool's pages, --limit over all of them.
    every = [(i["pool"], i["name"]) for i in ctl.json(
        "image", "list", "--chunk-size", "2")["images"]]
    check(every == [("pool0", "img-a"), ("pool0", "img-b"),
                    ("pool0", "img-c"), ("pool1", "img-z")], every)
    got, asked = paged("image", "list", "--limit", "4", "--chunk-size", "2")
    check([(i["pool"], i["name"]) for i in got["images"]] == every and
          asked[1:] == [V + "/storage/pools/pool0/images?limit=2",
                        asked[2], V + "/storage/pools/pool1/images?limit=1"],
          got, asked)

    # Volumes created and deleted between pages of 4 (pagetest's walk).
    live = set(vols)

    def walk_volumes(between):
        walked = {"last": ""}

        def before(n):
            # The page the daemon answered last: the next 4 by name.
            page = sorted(x for x in live if x > walked["last"])[:4]
            if n >= 2 and page:
                walked["last"] = page[-1]
                between(page)

        got, _ = paged("volume", "list", "pool0", "--chunk-size", "4",
                       before=before)
        return [v["name"] for v in got["volumes"]]

    def make_vol(name):
        d.ok("POST", V + "/storage/pools/pool0/volumes",
             {"name": name, "size": 1 << 20}, status=201)
        live.add(name)

    def drop_vol(name):
        st, _, _ = d.request("DELETE",
                             V + "/storage/pools/pool0/volumes/" + name)
        check(st in (200, 204), name, st)
        live.discard(name)

    churned_walk(walk_volumes, vols, make_vol, drop_vol)

    # A failure on a later page fails the command and prints no list.
    def refuse(n):
        if n == 2:
            d.stop()

    proxy.reset(refuse)
    rc, out, err = pctl("vm", "list", "--chunk-size", "500")
    check(rc == 5 and not out.strip() and err.startswith("vmhostctl: "),
          rc, out, err)
    proxy.close()
print("ok")
