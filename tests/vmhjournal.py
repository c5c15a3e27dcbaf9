# SPDX-License-Identifier: LGPL-2.1-or-later
"""Read and write vmhostd's record journal (core/journal.h) from tests,
while vmhostd is stopped: the records a state directory holds, a record
removed by hand (a delete frame appended), frames damaged on purpose.

    import vmhjournal
    recs = vmhjournal.records(state_dir)      # {id: record dict}
    vmhjournal.remove(state_dir, vm_id)       # as an operator would
"""
import json
import os
import struct

MAGIC = b"VMHJ"
HDR = 20
LOG = "vms.journal"
OLD = "vms.journal.compacting"
SNAP = "vms.snapshot"

_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def frame(seq, kind, key, value=b""):
    """The bytes of one frame."""
    if isinstance(key, str):
        key = key.encode()
    if isinstance(value, str):
        value = value.encode()
    payload = kind.encode() + bytes([len(key)]) + key + value
    body = struct.pack("<Q", seq) + payload
    return MAGIC + struct.pack("<II", len(payload), crc32c(body)) + body


def frames(path):
    """[(offset, seq, kind, key, value)] of the valid frames from the start
    of path up to the first bad one (or the zeros that end a log); and the
    offset where they stop."""
    if not os.path.exists(path):
        return [], 0
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off + HDR + 2 <= len(data):
        magic, plen, crc = data[off:off + 4], *struct.unpack_from(
            "<II", data, off + 4)
        body = data[off + 12:off + HDR + plen]
        if magic != MAGIC or len(body) != 8 + plen or crc32c(body) != crc:
            break
        seq = struct.unpack_from("<Q", body)[0]
        kind, klen = chr(body[8]), body[9]
        key = body[10:10 + klen].decode()
        out.append((off, seq, kind, key, body[10 + klen:]))
        off += HDR + plen
    return out, off


def records(state_dir):
    """{id: record} as vmhostd would load them (snapshot, old log, log)."""
    recs, snap_seq, last = {}, 0, 0
    for name in (SNAP, OLD, LOG):
        for _, seq, kind, key, value in frames(
                os.path.join(state_dir, name))[0]:
            if kind == "S":
                snap_seq = last = seq
            elif name == SNAP and kind == "P":
                recs[key] = json.loads(value)
            elif kind in "PD" and seq > snap_seq:
                last = max(last, seq)
                if kind == "P":
                    recs[key] = json.loads(value)
                else:
                    recs.pop(key, None)
    return recs


def last_seq(state_dir):
    seqs = [fr[1] for name in (SNAP, OLD, LOG)
            for fr in frames(os.path.join(state_dir, name))[0]]
    return max(seqs, default=0)


def end(state_dir):
    """Where the log's frames end (zeros after that are preallocated)."""
    return frames(os.path.join(state_dir, LOG))[1]


def append(state_dir, data):
    """Write data after the log's last frame (over its zeros)."""
    path = os.path.join(state_dir, LOG)
    at = end(state_dir)
    with open(path, "r+b" if os.path.exists(path) else "wb") as f:
        f.seek(at)
        f.write(data)


def remove(state_dir, vm_id):
    """Remove a record by hand (vmhostd stopped): a delete frame."""
    append(state_dir, frame(last_seq(state_dir) + 1, "D", vm_id))
