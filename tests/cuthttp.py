# SPDX-License-Identifier: LGPL-2.1-or-later
"""An HTTP server for the image-import tests (test-local-images.py,
test-nfs-pool.py): serves the files of a directory with Range support
(`bytes=N-`), and cuts transfers half-way so that imports must resume:
the first transfer of each /cut/NAME, and every transfer of
/always-cut/NAME.  It logs each request ("PATH RANGE", "-" for none).
It runs as a child process (stopped by PID), so that it serves while the
test blocks in a call to vmhostd.

    srv = CutServer(www_dir, tmp_dir)   # started; srv.url
    srv.clear_requests(); ...; srv.requests()
    srv.check_resumes(lambda: import_of("/tiny.raw"), "/tiny.raw")
    srv.stop()
"""
import os
import signal
import subprocess
import sys
import time

from vmhtest import check

SERVER = r'''
import http.server, os, sys
root, portfile, logfile = sys.argv[1:4]
cut_done = set()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        with open(logfile, "a") as f:
            f.write(f"{self.path} {self.headers.get('Range', '-')}\n")
        name = os.path.basename(self.path)
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            self.send_response(206)
            self.send_header("Content-Range",
                             f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.path.startswith("/always-cut/") or (
                self.path.startswith("/cut/") and self.path not in cut_done):
            # The first transfer stops half-way: the client must resume.
            cut_done.add(self.path)
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)
class S(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that stops reading (out of space) is expected
s = S(("127.0.0.1", 0), H)
with open(portfile + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
os.rename(portfile + ".tmp", portfile)
s.serve_forever()
'''


class CutServer:
    """Serves root on 127.0.0.1 (a free port); its files under tmp."""

    def __init__(self, root, tmp):
        portfile = os.path.join(tmp, "http.port")
        self.reqlog = os.path.join(tmp, "http.requests")
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, root,
                                      portfile, self.reqlog])
        for _ in range(500):
            if os.path.exists(portfile):
                break
            check(self.proc.poll() is None, "the HTTP server exited")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{int(open(portfile).read())}"

    def clear_requests(self):
        open(self.reqlog, "w").close()

    def requests(self):
        """The requests logged since clear_requests(), one string each."""
        with open(self.reqlog) as f:
            return f.read().split("\n")

    def check_resumes(self, do_import, path):
        """do_import() must fetch path resuming a part: its first request a
        Range request from past the start."""
        self.clear_requests()
        do_import()
        reqs = self.requests()
        check(reqs[0].startswith(f"{path} bytes=")
              and reqs[0] != f"{path} bytes=0-", reqs)

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait()
            self.proc = None
