"""Who holds a subscription's lease: a name for each process that delivers, telling
whether that process still runs when it is on this machine.

An owner is `host/pid namespace/pid/start time/random`, read from `/proc`: another process
on the same host and in the same PID namespace is gone when its PID no longer runs, runs
a program started at another time (the PID was reused), or is a zombie. Anything else
(another machine, another container, no `/proc`) is never judged gone: its lease runs out.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path

_running: set[str] = set()
_lock = threading.Lock()


def _namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:
        return None


def _started(pid: int) -> tuple[str, str] | None:
    """A process's state and start time (clock ticks since boot), None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], fields[19]


class Owner:
    """Names for the leases this process holds, and whether another holder is gone."""

    @staticmethod
    def mine() -> str:
        """A new owner name for this process (one per set of deliveries it runs)."""
        host = socket.gethostname().replace("/", "_")
        namespace = _namespace()
        started = _started(os.getpid())
        if namespace is None or started is None:
            name = f"-/-/{os.getpid()}/-/{uuid.uuid4()}"
        else:
            name = f"{host}/{namespace}/{os.getpid()}/{started[1]}/{uuid.uuid4()}"
        with _lock:
            _running.add(name)
        return name

    @staticmethod
    def retire(name: str) -> None:
        """This process no longer delivers under `name`."""
        with _lock:
            _running.discard(name)

    @staticmethod
    def here(name: str) -> bool:
        """Whether `name` is one of this process's running deliveries."""
        with _lock:
            return name in _running

    @staticmethod
    def gone(name: str) -> bool:
        """Whether the process holding `name` is known to have stopped."""
        if Owner.here(name):
            return False
        parts = name.split("/")
        namespace = _namespace()
        if len(parts) != 5 or namespace is None or "-" in (parts[0], parts[1], parts[3]):
            return False
        host, their_namespace, pid, started = parts[:4]
        if host != socket.gethostname().replace("/", "_") or their_namespace != namespace:
            return False
        if not pid.isdigit():
            return False
        if int(pid) == os.getpid():
            return True  # this process, under a name it no longer runs
        found = _started(int(pid))
        return found is None or found[0] in ("Z", "X") or found[1] != started
