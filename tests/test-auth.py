#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Who may do what (plugins/frontend/common/h2auth.c): every REST route and
gRPC method of the front-ends' tables called as nobody, reader, operator
and admin (the roles the tables declare, checked against the policy here:
a route or method missing from either side fails); the token lifecycle
(first-start admin token, API and vmhostd --token-create, list, revoke);
unix-socket peers by SO_PEERCRED; cleartext listeners on a network address
refused unless insecure; certificate changes admin-only."""
import os
import re
import socket
import stat
import subprocess

from resttest import TOP_SRCDIR, RestDaemon, import_h2, openapi, require
from rpctest import RpcDaemon, frame, grpc, pb
from vmhtest import VMHOSTD, check, fail, free_port, mocks

require("curl")

# The policy: the role each route and method needs.
REST_POLICY = {
    "GET /api/v1/host": "reader",
    "GET /api/v1/host/health": "reader",
    "GET /api/v1/host/metrics": "reader",
    "GET /api/v1/host/resources": "reader",
    "GET /api/v1/host/hardware": "reader",
    "GET /api/v1/plugins": "reader",
    "GET /api/v1/cluster": "reader",
    "GET /api/v1/vms": "reader",
    "POST /api/v1/vms": "operator",
    "GET /api/v1/vms/{}": "reader",
    "DELETE /api/v1/vms/{}": "operator",
    "PATCH /api/v1/vms/{}": "operator",
    "POST /api/v1/vms/{}/start": "operator",
    "POST /api/v1/vms/{}/stop": "operator",
    "POST /api/v1/vms/{}/reboot": "operator",
    "POST /api/v1/vms/{}/pause": "operator",
    "POST /api/v1/vms/{}/resume": "operator",
    "GET /api/v1/vms/{}/console": "operator",
    "GET /api/v1/vms/{}/snapshots": "reader",
    "POST /api/v1/vms/{}/snapshots": "operator",
    "POST /api/v1/vms/{}/snapshots/{}/revert": "operator",
    "GET /api/v1/vms/{}/snapshots/{}": "reader",
    "DELETE /api/v1/vms/{}/snapshots/{}": "operator",
    "POST /api/v1/vms/{}/disks": "operator",
    "DELETE /api/v1/vms/{}/disks/{}": "operator",
    "GET /api/v1/vms/{}/agent": "reader",
    "POST /api/v1/vms/{}/agent/ping": "reader",
    "POST /api/v1/vms/{}/agent/exec": "admin",
    "GET /api/v1/vms/{}/agent/files": "admin",
    "PUT /api/v1/vms/{}/agent/files": "admin",
    "POST /api/v1/vms/{}/agent/time-sync": "operator",
    "GET /api/v1/storage/pools": "reader",
    "GET /api/v1/storage/pools/{}": "reader",
    "GET /api/v1/storage/pools/{}/volumes": "reader",
    "POST /api/v1/storage/pools/{}/volumes": "operator",
    "GET /api/v1/storage/pools/{}/volumes/{}": "reader",
    "PATCH /api/v1/storage/pools/{}/volumes/{}": "operator",
    "DELETE /api/v1/storage/pools/{}/volumes/{}": "operator",
    "GET /api/v1/storage/pools/{}/images": "reader",
    "POST /api/v1/storage/pools/{}/images": "operator",
    "GET /api/v1/storage/pools/{}/images/{}": "reader",
    "DELETE /api/v1/storage/pools/{}/images/{}": "operator",
    "GET /api/v1/operations": "reader",
    "GET /api/v1/operations/{}": "reader",
    "GET /api/v1/operations/{}/wait": "reader",
    "DELETE /api/v1/operations/{}": "operator",
    "GET /api/v1/networks": "reader",
    "GET /api/v1/networks/{}": "reader",
    "GET /api/v1/events": "reader",
    "GET /api/v1/settings/certificates": "reader",
    "POST /api/v1/settings/certificates/generate": "admin",
    "POST /api/v1/settings/certificates/upload": "admin",
    "POST /api/v1/settings/certificates/restore": "admin",
    "GET /api/v1/settings/tokens": "admin",
    "POST /api/v1/settings/tokens": "admin",
    "DELETE /api/v1/settings/tokens/{}": "admin",
    "GET /api/v1/agent/version": "open",
    "GET /api/v1/agent/install.sh": "open",
    "GET /api/v1/agent/linux/{}.deb": "open",
    "GET /api/v1/agent/linux/{}": "open",
    "GET /metrics": "metrics",
    "GET /healthz": "open",
    "GET /readyz": "open",
}
R, O = "reader", "operator"
RPC_POLICY = {
    f"/vmhost.v1.NodeService/{m}": role for m, role in {
        "HealthCheck": R, "GetNodeInfo": R, "ListPlugins": R,
        "CreateVM": O, "GetVM": R, "GetVMStatus": R, "ListVMs": R,
        "UpdateVMLabels": O,
        "StartVM": O, "StopVM": O, "ForceStopVM": O, "RebootVM": O,
        "PauseVM": O, "ResumeVM": O, "DeleteVM": O, "GetConsole": O,
        "CreateSnapshot": O, "ListSnapshots": R, "GetSnapshot": R,
        "RevertSnapshot": O,
        "DeleteSnapshot": O, "AttachDisk": O, "DetachDisk": O,
        "ListPools": R, "GetPool": R, "ListVolumes": R, "GetVolume": R,
        "CreateVolume": O, "ResizeVolume": O, "DeleteVolume": O,
        "ListImages": R, "GetImage": R, "ImportImage": O, "DeleteImage": O,
        "ImportImageAsync": O, "UpdateVMLabelsAsync": O,
        "ListNetworks": R, "GetNetwork": R, "StreamMetrics": "metrics",
        "WatchEvents": R, "ListTokens": "admin", "CreateToken": "admin",
        "RevokeToken": "admin", "GetClusterStatus": R,
        "ListOperations": R, "GetOperation": R, "WaitOperation": R,
        "CancelOperation": O, "CreateVMAsync": O, "DeleteVMAsync": O,
        "StartVMAsync": O, "StopVMAsync": O, "RebootVMAsync": O,
        "CreateSnapshotAsync": O, "RevertSnapshotAsync": O,
        "CreateVolumeAsync": O, "ResizeVolumeAsync": O,
        "ForceStopVMAsync": O, "PauseVMAsync": O, "ResumeVMAsync": O,
        "DeleteSnapshotAsync": O, "AttachDiskAsync": O,
        "DetachDiskAsync": O, "DeleteVolumeAsync": O,
        "GetAgent": R, "AgentPing": R, "AgentExec": "admin",
        "AgentReadFile": "admin", "AgentWriteFile": "admin",
        "AgentTimeSync": O}.items()}
RPC_POLICY.update({
    "/grpc.health.v1.Health/Check": "open",
    "/grpc.health.v1.Health/Watch": "open",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": R,
})
ROLE_C = {"AUTH_READER": "reader", "AUTH_OPERATOR": "operator",
          "AUTH_ADMIN": "admin", "H2S_METRICS": "metrics",
          "H2S_OPEN": "open"}
LEVEL = {"none": 0, "reader": 1, "operator": 2, "admin": 3}


def source(*parts):
    with open(os.path.join(TOP_SRCDIR, *parts)) as f:
        return f.read()


def rest_table():
    """{"METHOD PATTERN": role} from frontend-rest.c's routes table."""
    text = source("plugins", "frontend", "rest", "frontend-rest.c")
    body = text[text.index("static const struct route routes[]"):]
    body = body[:body.index("};")]
    rows = re.findall(r'\{"(\w+)",\s*"([^"]+)",\s*\w+,\s*(\w+)\}', body)
    check(len(rows) == body.count("{\"") and rows, "routes table unparsed")
    return {f"{m} {p}": ROLE_C[r] for m, p, r in rows}


def rpc_table():
    """{"/service/Method": role} from frontend-rpc.c's methods table."""
    text = source("plugins", "frontend", "rpc", "frontend-rpc.c")
    body = text[text.index("static const struct method methods[]"):]
    body = body[:body.index("};")]
    rows = re.findall(r'\{\s*(NODE|"[\w.]+"),\s*"(\w+)",\s*\w+,\s*\w+,\s*'
                      r'(\w+)\}', body)
    check(rows and len(rows) == body.count("{") - 1, "methods table unparsed")
    svc = {"NODE": "vmhost.v1.NodeService"}
    return {f"/{svc.get(s, s.strip(chr(34)))}/{m}": ROLE_C[r]
            for s, m, r in rows}


def same_policy(table, policy, what):
    for k in table.keys() - policy.keys():
        fail(f"{what} {k} declares {table[k]}; the policy here lacks it")
    for k in policy.keys() - table.keys():
        fail(f"{what} {k}: in the policy, not in the table")
    for k in table:
        check(table[k] == policy[k], what, k, "declares", table[k],
              "the policy says", policy[k])


def expect_allowed(need, who):
    if need == "open":
        return True
    if need == "metrics":
        need = "reader"
    return LEVEL[who] >= LEVEL[need]


rest_routes = rest_table()
same_policy(rest_routes, REST_POLICY, "REST route")
# openapi.yaml says the same (x-role on every operation).
for pattern, item in openapi()["paths"].items():
    for method, op in item.items():
        if method not in ("get", "post", "put", "patch", "delete"):
            continue  # parameters shared by the path's operations
        key = f"{method.upper()} {re.sub(r'[{][^}]+[}]', '{}', pattern)}"
        want = {"open": "none", "metrics": "reader (none with "
                "auth.open_metrics)"}.get(rest_routes.get(key),
                                          rest_routes.get(key))
        check(op.get("x-role") == want, "openapi.yaml", key, "x-role",
              op.get("x-role"), "the table says", rest_routes.get(key))
rpc_methods = rpc_table()
same_policy(rpc_methods, RPC_POLICY, "gRPC method")

h2 = import_h2()


class KeptH2:
    """One cleartext HTTP/2 connection kept open for GETs."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.c = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True))
        self.c.initiate_connection()
        self.s.sendall(self.c.data_to_send())

    def status(self, path, token):
        """The status of GET path with token, on this connection."""
        sid = self.c.get_next_available_stream_id()
        self.c.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                  (":path", path), (":authority", "x"),
                                  ("authorization", f"Bearer {token}")],
                            end_stream=True)
        self.s.sendall(self.c.data_to_send())
        status = None
        while True:
            chunk = self.s.recv(65536)
            if not chunk:
                fail(path, "connection closed before an answer")
            for ev in self.c.receive_data(chunk):
                if isinstance(ev, h2.events.ResponseReceived) and \
                        ev.stream_id == sid:
                    status = int(dict(ev.headers)[b":status"])
                if isinstance(ev, h2.events.DataReceived):
                    self.c.acknowledge_received_data(
                        ev.flow_controlled_length, ev.stream_id)
                if isinstance(ev, h2.events.StreamEnded) and \
                        ev.stream_id == sid:
                    self.s.sendall(self.c.data_to_send())
                    return status
            self.s.sendall(self.c.data_to_send())

    def close(self):
        self.s.close()


# ---- REST: each role against every route -----------------------------------
d = RestDaemon()
with d:
    admin = d.token()
    check(stat.S_IMODE(os.stat(os.path.join(d.tmpdir, "state", "auth",
                                            "admin.token")).st_mode) == 0o600)
    check("wrote an admin API token to" in d.log(), "first start logged")
    tokens = {"none": None, "admin": admin}
    for role in ("reader", "operator"):
        v = d.ok("POST", "/api/v1/settings/tokens",
                 {"name": f"t-{role}", "role": role}, status=201)
        check(v["role"] == role and v["token"].startswith("vmh_"), v)
        tokens[role] = v["token"]
    # Never stored in clear.
    with open(os.path.join(d.tmpdir, "state", "auth", "tokens")) as f:
        stored = f.read()
    check(all(t not in stored for t in tokens.values() if t), stored)

    for key, need in rest_routes.items():
        method, pattern = key.split(" ", 1)
        path = pattern.replace("{}", "nope")
        if path == "/api/v1/events":
            method = "HEAD"  # the stream, without waiting on it
        for who, tok in tokens.items():
            st, hdrs, v = d.request(method, path, body=None,
                                    token=tok if tok else False)
            allowed = expect_allowed(need, who)
            if allowed:
                check(st not in (401, 403), key, "as", who, "refused", st, v)
            else:
                want = 401 if who == "none" else 403
                check(st == want, key, "as", who, "answered", st, "not", want)
                if method != "HEAD":
                    code = v["error"]["code"]
                    check(code == ("UNAUTHENTICATED" if want == 401
                                   else "PERMISSION_DENIED"), key, v)
                if want == 401:
                    check("www-authenticate" in hdrs, key, hdrs)
    log = d.log()
    check("token:t-reader has role reader; this call needs operator" in log,
          "403 logged with the identity")
    check(re.search(r"refused POST /api/v1/vms from 127\.0\.0\.1:\d+ "
                    r"\(anonymous\)", log), "401 logged with the peer")
    check(re.search(r"access id=\S+ peer=\S+ who=token:t-operator ", log),
          "the access log names the identity")

    # Secrets in a VM's spec (user_data) are not shown to readers; the
    # list from memory is cached apart for them.
    secret = "#cloud-config\npassword: hunter2\n"
    d.ok("POST", "/api/v1/vms", {"name": "sec", "vcpus": 1,
                                 "memory": 1 << 30, "user_data": secret},
         status=201)
    for _ in range(2):  # the second answer comes from the cache
        for who, want in (("reader", False), ("operator", True),
                          ("reader", False)):
            for path in ("/api/v1/vms/sec", "/api/v1/vms"):
                st, _, v = d.request("GET", path, token=tokens[who])
                check(st == 200, path, who, st, v)
                text = str(v)
                check(("hunter2" in text) == want, path, who, text)
                if not want:
                    check("hidden" in text, path, who, text)
    # ... and never logged (the daemon logs at debug here, access log on).
    check("hunter2" not in d.log(), "user_data in the log")

    # Finding 1: anyone could replace the TLS certificate.  Now admin only.
    C = "/api/v1/settings/certificates"
    before = d.ok("GET", C)["sha256"]
    for tok, want in ((False, 401), (tokens["operator"], 403)):
        st, _, v = d.request("POST", C + "/upload",
                             {"cert": "x", "key": "y"}, token=tok)
        check(st == want, "upload as", tok, st, v)
        st, _, v = d.request("POST", C + "/generate", {}, token=tok)
        check(st == want, "generate as", tok, st, v)
    check(d.ok("GET", C)["sha256"] == before, "the certificate changed")

    # ---- token lifecycle ----------------------------------------------------
    names = [t["name"] for t in d.ok("GET", "/api/v1/settings/tokens")["tokens"]]
    check(names == ["admin", "t-operator", "t-reader"], names)
    st, _, v = d.request("POST", "/api/v1/settings/tokens",
                         {"name": "t-reader", "role": "reader"})
    check(st == 409, "a duplicate name", st, v)
    for bad in ({"name": "Bad Name", "role": "reader"},
                {"name": "x", "role": "root"}, {"name": "x"},
                {"name": "x", "role": "reader", "extra": 1}):
        st, _, v = d.request("POST", "/api/v1/settings/tokens", bad)
        check(st == 400, bad, st, v)
    # A token made by the command while the daemon runs works at once.
    r = subprocess.run([VMHOSTD, "--config", d.config, "--token-create",
                        "from-cli", "--role", "operator"],
                       capture_output=True, text=True)
    check(r.returncode == 0 and r.stdout.startswith("vmh_"), r.stdout,
          r.stderr)
    cli = r.stdout.strip()
    st, _, v = d.request("GET", "/api/v1/vms", token=cli)
    check(st == 200, "a --token-create token", st, v)
    # A wrong one, a mangled header, a revoked one: 401.
    st, _, v = d.request("GET", "/api/v1/vms", token=cli[:-1] + "A"
                         if cli[-1] != "A" else cli[:-1] + "B")
    check(st == 401 and "not valid" in v["error"]["message"], st, v)
    st, _, v = d.request("GET", "/api/v1/vms", token=False,
                         headers={"authorization": f"Basic {cli}"})
    check(st == 401 and "Bearer" in v["error"]["message"], st, v)
    d.ok("DELETE", "/api/v1/settings/tokens/from-cli", status=204)
    st, _, v = d.request("GET", "/api/v1/vms", token=cli)
    check(st == 401, "a revoked token still works", st, v)
    st, _, v = d.request("DELETE", "/api/v1/settings/tokens/from-cli")
    check(st == 404, st, v)
    # One HTTP/2 connection that keeps sending a token (the server keeps
    # its answer with the connection): every request is checked against
    # the tokens as they are when it is sent.
    h2k = KeptH2(d.port)
    cli = subprocess.run([VMHOSTD, "--config", d.config, "--token-create",
                          "kept", "--role", "reader"],
                         capture_output=True, text=True).stdout.strip()
    check(h2k.status("/api/v1/vms", cli) == 200, "a token on a kept "
          "connection refused")
    check(h2k.status("/api/v1/vms", admin) == 200, "another token refused")
    check(h2k.status("/api/v1/vms", cli) == 200, "a kept token refused")
    d.ok("DELETE", "/api/v1/settings/tokens/kept", status=204)
    check(h2k.status("/api/v1/vms", cli) == 401,
          "a token revoked through the API still works on a kept connection")
    later = subprocess.run([VMHOSTD, "--config", d.config, "--token-create",
                            "kept", "--role", "operator"],
                           capture_output=True, text=True).stdout.strip()
    check(h2k.status("/api/v1/vms", cli) == 401, "the revoked token is back")
    check(h2k.status("/api/v1/vms", later) == 200, "a token made by the "
          "command refused on a kept connection")
    d.ok("DELETE", "/api/v1/settings/tokens/kept", status=204)
    check(h2k.status("/api/v1/vms", later) == 401,
          "a token revoked by the API still works on a kept connection")
    h2k.close()
    # The first start's token is written once; a restart keeps the tokens.
    d.stop()
    d.start()
    check(d.token() == admin, "the admin token changed at restart")
    st, _, v = d.request("GET", "/api/v1/vms", token=tokens["reader"])
    check(st == 200, "tokens lost at restart", st, v)

    # ---- unix-socket peers ----------------------------------------------------
    # Root (this test) is admin without a token.
    r = d.curl("--unix-socket", d.usock, "-o", "/dev/null", "-w",
               "%{http_code}", "-X", "POST", "-H",
               "content-type: application/json", "-d", "{}",
               "http://x/api/v1/settings/certificates/generate", token=False)
    check(r.stdout == "200", "root on the unix socket", r.stdout, r.stderr)
    d.stop()

# nobody is mapped to reader, group 65533 to operator, uid 65532 to nothing.
if os.geteuid() == 0:
    d2 = RestDaemon(rest="""    auth:
      unix_peers: [ { uid: 65534, role: reader },
                    { gid: 65533, role: operator } ]""")
    with d2:
        os.chmod(d2.tmpdir, 0o755)
        os.chmod(d2.usock, 0o666)

        def as_uid(uid, method, path, gid=None):
            r = subprocess.run(
                ["setpriv", f"--reuid={uid}", f"--regid={gid or uid}",
                 "--clear-groups", "curl", "-sS", "-o", "/dev/null", "-w",
                 "%{http_code}", "-X", method, "--unix-socket", d2.usock,
                 "-H", "content-type: application/json", "-d", "{}"
                 if method == "POST" else "", "http://x" + path],
                capture_output=True, text=True)
            return r.stdout

        check(as_uid(65534, "GET", "/api/v1/vms") == "200", "nobody reads")
        check(as_uid(65534, "POST", "/api/v1/vms") == "403",
              "nobody (reader) creates")
        check("uid:65534 has role reader; this call needs operator"
              in d2.log(), d2.log()[-2000:])
        check(as_uid(65532, "GET", "/api/v1/vms") == "403", "unmapped uid")
        # A group maps too: its members are operators.
        check(as_uid(65532, "POST", "/api/v1/vms", gid=65533) == "400",
              "a member of the operators' group refused")
else:
    print("not root: the unix-socket peer mapping is not tested")

# ---- error messages: no host paths to readers --------------------------------
fault = (', faults: [ { op: vol_list, mode: always, error: io_error, '
         'message: "cannot read /var/lib/secret/vols: I/O error" } ]')
with RestDaemon(body=mocks(st=fault)) as d:
    v = d.ok("POST", "/api/v1/settings/tokens", {"name": "r", "role": "reader"},
             status=201)
    P = "/api/v1/storage/pools/pool0/volumes"
    st, _, e = d.request("GET", P, token=v["token"])
    msg = e["error"]["message"]
    check(st == 502 and "/var/lib/secret" not in msg and
          "cannot read (a host path): I/O error" in msg, "reader:", st, e)
    st, _, e = d.request("GET", P)
    check("cannot read /var/lib/secret/vols" in e["error"]["message"],
          "admin:", e)

# ---- listeners: cleartext on a network address -----------------------------
port = free_port()
for extra, ok in (("", False), (", insecure: true", True)):
    d3 = RestDaemon(rest=f'      - {{ address: "0.0.0.0:{port}"{extra} }}',
                    listen_extra=True)
    r = subprocess.run([VMHOSTD, "--check-config", "--config", d3.config],
                       capture_output=True, text=True)
    if ok:
        check(r.returncode == 0, r.stderr)
    else:
        check(r.returncode == 2 and "is cleartext on an address other hosts "
              "reach" in r.stderr and "insecure: true" in r.stderr, r.stderr)
d3 = RestDaemon(rest=f'      - {{ address: "0.0.0.0:{port}", insecure: true }}',
                listen_extra=True)
with d3:
    check(f"INSECURE: listener 0.0.0.0:{port}" in d3.log(), "no warning")
    # Still no authority without credentials.
    st, _, _ = d3.request("GET", "/api/v1/vms", token=False)
    check(st == 401, st)

# ---- gRPC: each role against every method ----------------------------------


def first_answer(d, path, token):
    """The first HEADERS of the answer to path (an empty message): a dict;
    grpc-status is in it when the call was refused (Trailers-Only)."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=20)
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    hdrs = [(":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", "x"), ("content-type", "application/grpc"),
            ("te", "trailers")]
    if token:
        hdrs.append(("authorization", f"Bearer {token}"))
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, hdrs)
    conn.send_data(sid, frame(b""), end_stream=True)
    s.sendall(conn.data_to_send())
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                fail(path, "connection closed before an answer")
            for ev in conn.receive_data(chunk):
                if isinstance(ev, (h2.events.ResponseReceived,
                                   h2.events.TrailersReceived)):
                    return {k.decode(): v.decode() for k, v in ev.headers}
            s.sendall(conn.data_to_send())
    finally:
        s.close()


with RpcDaemon() as d:
    admin = d.token()
    tokens = {"none": None, "admin": admin}
    for role in ("reader", "operator"):
        r = subprocess.run([VMHOSTD, "--config", d.config, "--token-create",
                            f"g-{role}", "--role", role],
                           capture_output=True, text=True)
        check(r.returncode == 0, r.stderr)
        tokens[role] = r.stdout.strip()
    for path, need in rpc_methods.items():
        for who, tok in tokens.items():
            a = first_answer(d, path, tok)
            status = a.get("grpc-status")
            if expect_allowed(need, who):
                check(status not in ("16", "7"), path, "as", who, "refused",
                      a)
            else:
                want = "16" if who == "none" else "7"
                check(status == want, path, "as", who, "answered", a,
                      "not", want)
                check(a.get("grpc-message"), path, "no message", a)
    check("token:g-reader has role reader; this call needs operator"
          in d.log(), "PERMISSION_DENIED logged with the identity")
    # Tokens through gRPC: made, listed, used, revoked.
    admin_node = d.node()
    t = admin_node.CreateToken(pb.node.CreateTokenRequest(name="g-new",
                                                          role="operator"))
    check(t.token.startswith("vmh_") and t.role == "operator", t)
    names = [x.name for x in
             admin_node.ListTokens(pb.node.ListTokensRequest()).tokens]
    check("g-new" in names and all(not x.token for x in admin_node.ListTokens(
        pb.node.ListTokensRequest()).tokens), names)
    check(first_answer(d, "/vmhost.v1.NodeService/ListVMs", t.token)
          .get("grpc-status") is None, "the new token refused")
    admin_node.RevokeToken(pb.node.TokenRequest(name="g-new"))
    check(first_answer(d, "/vmhost.v1.NodeService/ListVMs", t.token)
          .get("grpc-status") == "16", "a revoked token accepted")
    try:
        admin_node.CreateToken(pb.node.CreateTokenRequest(name="x",
                                                          role="root"))
        fail("a bad role accepted")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, e)

    # user_data is hidden from readers here too.
    d.ok(op="vm_create", spec={"name": "sec", "vcpus": 1, "memory": 1 << 30,
                               "user_data": "password: hunter2\n"})
    for who, want in (("reader", False), ("operator", True)):
        node = d.node(d.channel(token=tokens[who]))
        vm = node.GetVM(pb.node.VmRequest(vm="sec"))
        check(("hunter2" in vm.spec.user_data) == want, who, vm.spec)
        vms = node.ListVMs(pb.node.ListVMsRequest()).vms
        check(("hunter2" in vms[0].spec.user_data) == want, who, vms)
    check("hunter2" not in d.log(), "user_data in the log")
print("ok")
