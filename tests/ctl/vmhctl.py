#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vmhctl — client of the test-only ctl front-end (tests/ctl/frontend-ctl.c).

The protocol is newline-delimited JSON on a unix socket: one request object
per line, one response object per line.  Every response has "code" (0 or a
VMH_E* code), "error" (its name), "http" and "message", plus the results.

Command line:

  vmhctl.py SOCKET 'JSON-REQUEST'
      Print the response (one line).  Exit 0 if its code is 0, 1 if the
      daemon answered with an error, 2 if there was no answer (cannot
      connect, timeout, connection closed).  A request that is not valid
      JSON is sent as it is (so that tests can check how the daemon takes
      it); valid JSON is sent on one line, however it was written.

  vmhctl.py --events SOCKET [--count N] [--timeout S] [--flags N]
                             [--ready-file PATH] [--type TYPE]...
      Subscribe and print the events, one JSON line each, as they come.
      {"dropped": N} lines (events the daemon dropped because the client
      was slow) are printed too but not counted.  With --count, exit 0
      after N events; without it, exit 0 when the daemon closes the
      stream.  --ready-file is created once the subscription is active, so
      that a shell test can start the stream in the background and wait
      for it before acting.  With --type (repeatable), only events of
      those types are printed and counted.  Exit 1 if the subscription is
      refused, 2 on timeout (default 30 s, for the whole stream).

As a module (sys.path.insert(0, os.path.join(os.environ["srcdir"], "ctl"))):

  import vmhctl
  r = vmhctl.call(sock, {"op": "vm_list"})        # the response, a dict
  r = vmhctl.check(sock, {"op": "vm_get", "vm": "vm1"})  # raises unless 0
  with vmhctl.Client(sock) as c:                  # several on one connection
      c.request({"op": "health"})
  with vmhctl.events(sock) as ev:                 # subscribed on return
      vmhctl.check(sock, {"op": "vm_action", "vm": "vm1", "action": "stop"})
      e = ev.next(timeout=10)                     # {"event": {...}}

Python 3 standard library only.
"""

import json
import os
import socket
import sys
import time

DEFAULT_TIMEOUT = 30.0


class Error(Exception):
    """No usable answer: cannot connect, timeout, closed, not JSON."""


class Closed(Error):
    """The daemon closed the connection."""


class Refused(Exception):
    """The daemon answered with a non-zero code (check())."""

    def __init__(self, response):
        super().__init__("%s (%s): %s" % (response.get("error"),
                                          response.get("code"),
                                          response.get("message")))
        self.response = response


def encode(request):
    """A request as one line of bytes: a dict is dumped; a string is sent
    compacted if it is JSON and as it is otherwise."""
    if isinstance(request, (bytes, bytearray)):
        text = bytes(request)
    else:
        if not isinstance(request, str):
            request = json.dumps(request, separators=(",", ":"))
        else:
            try:
                request = json.dumps(json.loads(request),
                                     separators=(",", ":"))
            except ValueError:
                pass
        text = request.encode("utf-8", "surrogateescape")
    if b"\n" in text:
        raise Error("a request must be one line")
    return text + b"\n"


class Client:
    """One connection; requests are answered in order."""

    def __init__(self, path, timeout=DEFAULT_TIMEOUT):
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise Error("cannot connect to %s: %s" % (path, e)) from e
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, request):
        try:
            self.sock.sendall(encode(request))
        except OSError as e:
            raise Error("send: %s" % e) from e

    def readline(self, timeout=None):
        """The next line as bytes (without the newline)."""
        deadline = time.monotonic() + (self.timeout if timeout is None
                                       else timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Error("timeout waiting for the daemon")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout as e:
                raise Error("timeout waiting for the daemon") from e
            except OSError as e:
                raise Error("recv: %s" % e) from e
            if not data:
                raise Closed("the daemon closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def read(self, timeout=None):
        line = self.readline(timeout)
        try:
            return json.loads(line)
        except ValueError as e:
            raise Error("not JSON: %r" % line[:200]) from e

    def request(self, request, timeout=None):
        self.send(request)
        return self.read(timeout)


def call(path, request, timeout=DEFAULT_TIMEOUT):
    """Send one request on a new connection; the response as a dict."""
    with Client(path, timeout) as c:
        return c.request(request)


def check(path, request, timeout=DEFAULT_TIMEOUT):
    """call(), raising Refused unless the code is 0."""
    r = call(path, request, timeout)
    if r.get("code") != 0:
        raise Refused(r)
    return r


class Events(Client):
    """A subscription: active once the constructor returns."""

    def __init__(self, path, flags=None, timeout=DEFAULT_TIMEOUT):
        super().__init__(path, timeout)
        req = {"op": "events"}
        if flags is not None:
            req["flags"] = flags
        try:
            self.ack = self.request(req)
        except Exception:
            self.close()
            raise
        if self.ack.get("code") != 0:
            self.close()
            raise Refused(self.ack)

    def next(self, timeout=None):
        """The next line: {"event": {...}} or {"dropped": N}."""
        return self.read(timeout)

    def wait(self, pred, timeout=DEFAULT_TIMEOUT):
        """The first event (the inner dict) for which pred is true."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Error("timeout waiting for an event")
            line = self.next(left)
            if "event" in line and pred(line["event"]):
                return line["event"]

    def __iter__(self):
        while True:
            yield self.next()


def events(path, flags=None, timeout=DEFAULT_TIMEOUT):
    return Events(path, flags, timeout)


def _usage(out):
    out.write("usage: vmhctl.py [--timeout S] SOCKET 'JSON-REQUEST'\n"
              "       vmhctl.py --events SOCKET [--count N] [--timeout S] "
              "[--flags N] [--ready-file PATH] [--type TYPE]...\n")


def _main_events(args):
    path = count = flags = ready = None
    types = set()
    timeout = DEFAULT_TIMEOUT
    it = iter(args)
    try:
        for a in it:
            if a == "--count":
                count = int(next(it))
            elif a == "--timeout":
                timeout = float(next(it))
            elif a == "--flags":
                flags = int(next(it), 0)
            elif a == "--ready-file":
                ready = next(it)
            elif a == "--type":
                types.add(next(it))
            elif path is None and not a.startswith("--"):
                path = a
            else:
                raise ValueError(a)
    except (StopIteration, ValueError):
        _usage(sys.stderr)
        return 2
    if path is None:
        _usage(sys.stderr)
        return 2
    deadline = time.monotonic() + timeout
    got = 0
    try:
        ev = Events(path, flags, timeout)
    except Refused as e:
        print(json.dumps(e.response, separators=(",", ":")), flush=True)
        return 1
    except Error as e:
        sys.stderr.write("vmhctl: %s\n" % e)
        return 2
    with ev:
        if ready:
            with open(ready, "w"):
                pass
        while count is None or got < count:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise Error("timeout waiting for events")
                line = ev.readline(left)
            except Closed as e:
                if count is None:
                    return 0
                sys.stderr.write("vmhctl: %s: got %d of %d events\n"
                                 % (e, got, count))
                return 2
            except Error as e:
                want = "" if count is None else " of %d" % count
                sys.stderr.write("vmhctl: %s (--timeout %g s): got %d "
                                 "event%s%s\n"
                                 % (e, timeout, got, "" if got == 1 else "s",
                                    want))
                return 2
            try:
                e = json.loads(line)
            except ValueError:
                e = None
            is_event = isinstance(e, dict) and "event" in e
            if types and is_event and e["event"].get("type") not in types:
                continue
            sys.stdout.write(line.decode("utf-8", "replace") + "\n")
            sys.stdout.flush()
            if is_event:
                got += 1
    return 0


def main(argv):
    args = argv[1:]
    if args and args[0] in ("-h", "--help"):
        _usage(sys.stdout)
        return 0
    if args and args[0] == "--events":
        return _main_events(args[1:])
    timeout = DEFAULT_TIMEOUT
    if len(args) >= 2 and args[0] == "--timeout":
        try:
            timeout = float(args[1])
        except ValueError:
            _usage(sys.stderr)
            return 2
        args = args[2:]
    if len(args) != 2:
        _usage(sys.stderr)
        return 2
    path, request = args
    try:
        with Client(path, timeout) as c:
            c.send(request)
            line = c.readline()
    except Error as e:
        sys.stderr.write("vmhctl: %s\n" % e)
        return 2
    sys.stdout.write(line.decode("utf-8", "replace") + "\n")
    try:
        code = json.loads(line).get("code")
    except (ValueError, AttributeError):
        sys.stderr.write("vmhctl: the answer is not a JSON object\n")
        return 2
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
