"""Find the process behind a local server by the port it listens on (Linux /proc).

Fault-injection tests freeze servers with SIGSTOP. A pid file under var/ names
the server only when this checkout started it: a second checkout (a CI clone
beside a developer's tree) finds the servers already up and has no pid files.
The listening socket always tells.
"""

from __future__ import annotations

import os
from pathlib import Path

_LISTEN = "0A"


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def listener_pid(port: int) -> int:
    """The pid of the process listening on 127.0.0.1:`port` (or any address)."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not targets:
        raise LookupError(f"nothing listens on port {port}")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                    return int(pid)
        except OSError:  # the process ended, or is not ours to look at
            continue
    raise LookupError(f"no visible process owns the socket on port {port}")
