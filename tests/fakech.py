#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A fake Cloud Hypervisor VMM for the tests: no KVM, no guest, but the
published REST API on --api-socket (HTTP/1.1, GET and PUT, 204 or 200 with
JSON, errors as a JSON array of messages with 400/404/405/409/500), every
request body validated against the API's schemas (chschema.py), CH's VM
state machine (Created, Running, Paused, Shutdown; vm.boot twice is an
error), its event monitor (--event-monitor path=…: pretty-printed JSON
events separated by blank lines), a serial console socket, and its vsock
unix socket with the "CONNECT <port>\\n" / "OK <port>\\n" handshake, which
it forwards to a fake guest listening on <vsock socket>.guest-<port>.

A guest that powers off (after vm.power-button) ends the VMM with exit 0,
as Cloud Hypervisor does.  Tests steer it through the JSON file named by
$FAKE_CH_CONTROL, read at every request:
  {"hang": ["vmm.ping", …]}          take the request, never answer
  {"fail": {"vm.boot": [500, ["msg"]]}}  answer that error
  {"ignore_power_button": true}      the guest does not power off
  {"exit_at_start": 3}               exit at once, with a line on stderr
Started by tests/fake-ch/cloud-hypervisor, on PATH as cloud-hypervisor."""
import json
import os
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chschema  # noqa: E402

MAX_BODY = 4 << 20
VERSION = "v40.0-fake"


def control():
    path = os.environ.get("FAKE_CH_CONTROL")
    if not path:
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


class Vmm:
    def __init__(self, events_path):
        self.lock = threading.Lock()
        self.config = None      # the VM's config; None: not created
        self.state = None       # Created, Running, Paused, Shutdown
        self.events = open(events_path, "w") if events_path else None
        self.listeners = []
        self.booted_at = None
        self.event("vmm", "starting")

    # -- event monitor ------------------------------------------------------
    def event(self, source, name, props=None):
        if not self.events:
            return
        ev = {"timestamp": {"secs": int(time.monotonic()),
                            "nanos": 0},
              "source": source, "event": name, "properties": props}
        try:
            self.events.write(json.dumps(ev, indent=2) + "\n\n")
            self.events.flush()
        except OSError:
            pass

    def exit(self, code=0):
        self.event("vmm", "shutdown")
        for path in self.listeners:
            try:
                os.unlink(path)
            except OSError:
                pass
        os._exit(code)

    # -- devices ------------------------------------------------------------
    def listen(self, path, serve):
        try:
            os.unlink(path)
        except OSError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(16)
        self.listeners.append(path)

        def loop():
            while True:
                c, _ = s.accept()
                threading.Thread(target=serve, args=(c,), daemon=True).start()
        threading.Thread(target=loop, daemon=True).start()

    def start_devices(self):
        serial = self.config.get("serial", {})
        if serial.get("mode") == "Socket" and serial.get("socket"):
            self.listen(serial["socket"], self.serve_console)
        vsock = self.config.get("vsock")
        if vsock:
            self.listen(vsock["socket"],
                        lambda c: self.serve_vsock(c, vsock["socket"]))

    @staticmethod
    def serve_console(c):
        try:
            c.sendall(b"fake cloud-hypervisor serial console\r\n")
            while c.recv(4096):
                pass
        except OSError:
            pass
        c.close()

    @staticmethod
    def serve_vsock(c, path):
        """CONNECT <port>\\n → the guest's listener on that port, then
        bytes both ways; no listener or a bad line: the connection closes."""
        line = b""
        try:
            while not line.endswith(b"\n") and len(line) < 64:
                b = c.recv(1)
                if not b:
                    break
                line += b
            words = line.decode("ascii", "replace").split()
            if len(words) != 2 or words[0] != "CONNECT" or \
                    not words[1].isdigit():
                c.close()
                return
            g = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            g.connect(f"{path}.guest-{int(words[1])}")
        except OSError:
            c.close()
            return
        c.sendall(b"OK 1073741824\n")

        def pump(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
            except OSError:
                pass
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        threading.Thread(target=pump, args=(g, c), daemon=True).start()
        pump(c, g)

    # -- the guest ------------------------------------------------------------
    def power_button(self):
        if control().get("ignore_power_button"):
            return

        def off():
            with self.lock:
                if self.state != "Running":
                    return
                self.state = "Shutdown"
                self.event("vm", "shutdown")
            self.exit(0)
        threading.Timer(0.05, off).start()

    # -- the API --------------------------------------------------------------
    def handle(self, method, ep, body):
        """(status, answer) for one request; answer is JSON-able or None."""
        gets = {"vmm.ping", "vm.info", "vm.counters"}
        if ep in gets and method != "GET" or ep not in gets and method != "PUT":
            return 405, ["Error from API", f"{method} not allowed on {ep}"]
        schema = chschema.BODIES.get(ep)
        if schema:
            if body is None:
                return 400, ["Error from API", "Missing request body"]
            try:
                chschema.validate(schema, body)
            except chschema.Invalid as e:
                return 400, ["Error from API",
                             f"Error parsing JSON: {e}"]
        elif body is not None and ep in gets:
            return 400, ["Error from API", "Unexpected request body"]
        fn = getattr(self, "api_" + ep.replace(".", "_").replace("-", "_"),
                     None)
        if fn is None:
            return 404, ["Error from API", f"Unknown endpoint {ep}"]
        with self.lock:
            return fn(body)

    def need(self, *states):
        if self.config is None:
            return 404, ["Error from API", "The VM is not created"]
        if self.state not in states:
            return 405, ["Error from API",
                         f"Invalid state transition from {self.state}"]
        return None

    def api_vmm_ping(self, _):
        return 200, {"build_version": VERSION, "version": VERSION[1:],
                     "pid": os.getpid(), "features": []}

    def api_vmm_shutdown(self, _):
        return 204, "exit"

    def api_vm_info(self, _):
        if self.config is None:
            return 404, ["Error from API", "The VM is not created"]
        return 200, {"config": self.config, "state": self.state,
                     "memory_actual_size": self.config["memory"]["size"]
                     if "memory" in self.config else 0}

    def api_vm_counters(self, _):
        if self.config is None:
            return 404, ["Error from API", "The VM is not created"]
        return 200, {d.get("id", f"_disk{i}"): {"read_bytes": 0}
                     for i, d in enumerate(self.config.get("disks", []))}

    def api_vm_create(self, body):
        if self.config is not None:
            return 400, ["Error from API", "The VM could not be created",
                         "The VM is already created"]
        ids = [d.get("id") for k in ("disks", "net")
               for d in body.get(k, []) if d.get("id")]
        if len(ids) != len(set(ids)):
            return 400, ["Error from API", "The VM could not be created",
                         "Identifier is not unique"]
        self.config = body
        self.state = "Created"
        return 204, None

    def api_vm_delete(self, _):
        self.config = None
        self.state = None
        self.event("vm", "deleted")
        return 204, None

    def api_vm_boot(self, _):
        if self.config is None:
            return 404, ["Error from API", "The VM is not created"]
        if self.state not in ("Created", "Shutdown"):
            return 500, ["Error from API", "The VM could not boot",
                         "VM is already running"]
        self.event("vm", "booting")
        if self.state == "Created" and not self.listeners:
            self.start_devices()
        self.state = "Running"
        self.event("vm", "booted")
        return 204, None

    def _move(self, need, to, ing, ed):
        err = self.need(need)
        if err:
            return err
        self.event("vm", ing)
        self.state = to
        self.event("vm", ed)
        return 204, None

    def api_vm_pause(self, _):
        return self._move("Running", "Paused", "pausing", "paused")

    def api_vm_resume(self, _):
        return self._move("Paused", "Running", "resuming", "resumed")

    def api_vm_reboot(self, _):
        return self._move("Running", "Running", "rebooting", "rebooted")

    def api_vm_shutdown(self, _):
        err = self.need("Running", "Paused")
        if err:
            return err
        self.state = "Created"  # CH keeps the config: boot works again
        self.event("vm", "shutdown")
        return 204, None

    def api_vm_power_button(self, _):
        err = self.need("Running")
        if err:
            return err
        self.power_button()
        return 204, None

    def api_vm_add_disk(self, body):
        if self.config is None:
            return 404, ["Error from API", "The VM is not created"]
        disks = self.config.setdefault("disks", [])
        if body.get("id") and any(d.get("id") == body["id"] for d in disks):
            return 400, ["Error from API", "Failed to add disk",
                         "Identifier is not unique"]
        body.setdefault("id", f"_disk{len(disks)}")
        disks.append(body)
        if self.state in ("Running", "Paused"):
            return 200, {"id": body["id"], "bdf": "0000:00:0%x.0"
                         % (4 + len(disks))}
        return 204, None

    def api_vm_remove_device(self, body):
        if self.config is None:
            return 404, ["Error from API", "The VM is not created"]
        for k in ("disks", "net"):
            devs = self.config.get(k, [])
            for d in devs:
                if d.get("id") == body.get("id"):
                    devs.remove(d)
                    return 204, None
        return 404, ["Error from API", "Failed to remove device",
                     f"No device with id {body.get('id')}"]

    def api_vm_snapshot(self, body):
        err = self.need("Paused")
        if err:
            return err
        url = body.get("destination_url", "")
        if not url.startswith("file://") or not os.path.isdir(url[7:]):
            return 500, ["Error from API", "The VM could not be snapshotted",
                         f"Invalid destination {url}"]
        self.event("vm", "snapshotting")
        d = url[7:]
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(self.config, f)
        with open(os.path.join(d, "state.json"), "w") as f:
            json.dump({"state": self.state}, f)
        with open(os.path.join(d, "memory-ranges"), "wb") as f:
            f.write(b"\0" * 4096)
        self.event("vm", "snapshotted")
        return 204, None

    def api_vm_restore(self, body):
        if self.config is not None:
            return 404, ["Error from API", "The VM could not be restored",
                         "The VM is already created"]
        url = body["source_url"]
        try:
            with open(os.path.join(url[7:], "config.json")) as f:
                cfg = json.load(f)
        except (OSError, ValueError) as e:
            return 500, ["Error from API", "The VM could not be restored",
                         str(e)]
        self.event("vm", "restoring")
        self.config = cfg
        self.state = "Paused"
        self.start_devices()
        self.event("vm", "restored")
        if body.get("resume"):
            self.state = "Running"
            self.event("vm", "resumed")
        return 204, None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    vmm = None

    def log_message(self, fmt, *args):
        sys.stderr.write("fake-ch: " + (fmt % args) + "\n")

    def address_string(self):
        return "api"

    def answer(self, status, obj):
        data = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def serve(self, method):
        path = self.path
        if not path.startswith("/api/v1/"):
            self.answer(404, ["Error from API", f"Unknown path {path}"])
            return
        ep = path[len("/api/v1/"):]
        n = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding"):
            self.answer(400, ["Error from API", "Chunked bodies unsupported"])
            return
        if n > MAX_BODY:
            self.answer(400, ["Error from API", "Request too large"])
            self.close_connection = True
            return
        raw = self.rfile.read(n) if n else b""
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as e:
                self.answer(400, ["Error from API",
                                  f"Error parsing JSON: {e}"])
                return
        ctl = control()
        if ep in ctl.get("hang", []):
            time.sleep(3600)
        if ep in ctl.get("fail", {}):
            st, msgs = ctl["fail"][ep]
            self.answer(st, msgs)
            return
        status, obj = self.vmm.handle(method, ep, body)
        if obj == "exit":
            try:
                self.answer(status, None)
            finally:
                self.vmm.exit(0)
        self.answer(status, obj)

    def do_GET(self):
        self.serve("GET")

    def do_PUT(self):
        self.serve("PUT")

    def do_POST(self):
        self.serve("POST")


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def opt_path(v):
    """CH's "path=/x" (or a bare path) of --api-socket / --event-monitor."""
    for part in v.split(","):
        if part.startswith("path="):
            return part[5:]
    return v if "=" not in v else None


def main(argv):
    api = events = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-V", "--version"):
            print("cloud-hypervisor", VERSION)
            return 0
        if a in ("--api-socket", "--event-monitor") and i + 1 < len(argv):
            p = opt_path(argv[i + 1])
            if p is None:
                print(f"Error parsing {a}: no path", file=sys.stderr)
                return 1
            if a == "--api-socket":
                api = p
            else:
                events = p
            i += 2
            continue
        if a == "-v":
            i += 1
            continue
        print(f"error: unexpected argument '{a}' found", file=sys.stderr)
        return 1
    code = control().get("exit_at_start")
    if code is not None:
        print("Error booting VM: fake failure at start", file=sys.stderr)
        return int(code)
    if api is None:
        print("error: --api-socket is required", file=sys.stderr)
        return 1
    Handler.vmm = Vmm(events)
    try:
        os.unlink(api)
    except OSError:
        pass
    srv = Server(api, Handler)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
