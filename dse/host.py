"""Facts about the worker process and its host: who runs a trial, and whether a worker
recorded on this host is still alive."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any


def worker_identity() -> dict[str, Any]:
    """Who runs a trial: host and pid, and the process namespace in which the pid means
    something (boot id and pid namespace, where the system tells them)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pidns": _PID_NAMESPACE}


def _pid_namespace() -> str | None:
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot_id}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return None


_PID_NAMESPACE = _pid_namespace()


def dead_here(worker: dict[str, Any]) -> bool:
    """Whether ``worker`` ran in this host's process namespace and is gone."""
    if (_PID_NAMESPACE is None or worker.get("pidns") != _PID_NAMESPACE
            or worker.get("host") != socket.gethostname()):
        return False
    pid = worker.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


