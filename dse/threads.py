"""Torch threads per worker: the CPUs this process may use, shared among the dse workers
on the same host (``dse search`` registers every search under one key, whatever its study).

Each worker of a key claims a slot in ``<tempdir>/dse-workers-<uid>/<sha256(key)[:16]>/``
by holding an exclusive ``fcntl.flock`` on its own ``slot-<i>.lock`` for its lifetime;
counting the workers means trying a non-blocking lock on every slot file and releasing it
at once, so a slot counts exactly while some process holds its lock. ``flock`` is used
rather than PID files because the kernel drops the lock when the holding process dies, even
on ``kill -9``, so a dead worker never counts and its file is simply reused; there is no
PID to be recycled by an unrelated process and nothing to clean up. The registry is
host-local by construction: a worker in another container or PID namespace that shares
this ``/tmp`` still counts, which is right because it competes for the same CPUs, while
workers on other hosts (say, of a SLURM array sharing a database) are not counted, which
is right too because they have CPUs of their own. When the registry cannot be used (the
temporary directory is not writable, the directory belongs to another user, the file
system has no locks) the worker behaves as a lone worker and nothing fails.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Callable

from hw_models.errors import ConfigError

# A safety bound on the slots tried when claiming; far above any sensible number of
# workers on one host, it only keeps a misbehaving file system from looping for ever.
MAX_SLOTS = 4096
# --threads above this is a typo, not a machine (and overflows torch's C int further up).
MAX_THREADS = 4096

# Environment variables read by OpenMP and MKL when a child process starts (this process
# read them at import time already; torch.set_num_threads is what acts here).
_CHILD_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# The variables apply_threads set itself: it keeps them in step with later changes but
# never overrides a value the user chose.
_variables_set_here: set[str] = set()
# torch accepts set_num_interop_threads once, and only before its interop pool starts.
_interop_tried = False


def available_cpus() -> int:
    """The number of CPUs this process may run on.

    Returns:
        The size of the process's CPU affinity mask (what ``taskset``, SLURM and container
        runtimes restrict), else ``os.cpu_count()`` where affinity is not available, and at
        least 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux, or the call is refused
        return max(1, os.cpu_count() or 1)


def validate_threads(requested: int | None) -> None:
    """Reject a ``--threads`` value below 1 or above ``MAX_THREADS``.

    Args:
        requested: The value given by the user, or None for the default.

    Raises:
        ConfigError: ``requested`` is below 1 or above ``MAX_THREADS``.
    """
    if requested is not None and requested < 1:
        raise ConfigError(f"--threads must be at least 1 (got {requested})")
    if requested is not None and requested > MAX_THREADS:  # torch takes a C int
        raise ConfigError(f"--threads must be at most {MAX_THREADS} (got {requested})")


def threads_for(requested: int | None, workers: int, cpus: int) -> int:
    """Threads for one worker.

    Args:
        requested: Threads asked for with ``--threads``, or None for the default.
        workers: Live dse workers of the study on this host, this one included.
        cpus: CPUs this process may run on.

    Returns:
        ``requested`` when given, else the worker's share ``cpus // workers``, at least 1.

    Raises:
        ConfigError: ``requested`` is below 1.
    """
    validate_threads(requested)
    if requested is not None:
        return requested
    return max(1, cpus // max(1, workers))


def apply_threads(n: int) -> None:
    """Use ``n`` torch threads in this process and suggest ``n`` to child processes.

    Safe to call repeatedly: the intra-op thread count follows every call; the interop pool
    is sized on the first call only, since torch refuses later changes (it is rarely busy
    in dse, which runs no parallel graphs). ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` are
    set for child processes only where the user has not set them.

    Args:
        n: Threads, at least 1.

    Raises:
        ValueError: ``n`` is below 1.
    """
    global _interop_tried
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    import torch  # here, not at module level: --help and the registry need no torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if not _interop_tried:
        _interop_tried = True
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # the interop pool has started already: keep torch's size
            pass
    for name in _CHILD_THREAD_VARIABLES:
        if name not in os.environ or name in _variables_set_here:
            os.environ[name] = str(n)
            _variables_set_here.add(name)


def _registry_root() -> Path:
    """The per-user folder holding one folder of slot files per study key."""
    return Path(tempfile.gettempdir()) / f"dse-workers-{os.getuid()}"


def _private_directory(path: Path) -> bool:
    """Create ``path`` (mode 0700) if missing; True if it is a directory owned by this user.

    A folder in a shared temporary directory could have been made by someone else (or be a
    symbolic link planted there); such a folder is not used.
    """
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


def _is_locked(path: Path) -> bool:
    """True if some open file holds a lock on ``path`` (probed without waiting)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # gone or unreadable: nobody registered through it
        return False
    try:
        # A shared lock conflicts only with a worker's exclusive one, so two workers
        # counting at the same time do not see each other's probes as workers.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class HostWorkers:
    """This process's registration among the live dse workers of one study on this host.

    Use as a context manager: entering claims a slot, leaving (or the process dying)
    releases it. A worker whose slot cannot be claimed still runs and counts itself.

    Attributes:
        key: The study key (e.g. storage URL and study name).
        directory: The folder of this key's slot files.
        slot: The index of the slot held, or None when none is held.
    """

    def __init__(self, key: str) -> None:
        """Prepare a registration for ``key``; nothing is claimed until entered.

        Args:
            key: Identifies the study; workers with equal keys share the CPUs.
        """
        self.key = key
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        self.directory = _registry_root() / digest
        self.slot: int | None = None
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the slot file

    def __enter__(self) -> HostWorkers:
        self.claim()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()

    def claim(self) -> int | None:
        """Hold the lowest free slot (a no-op if one is held already).

        Returns:
            The slot index, or None when the registry is unusable (then this worker is on
            its own as far as :meth:`count` is concerned).
        """
        if self._fd is not None:
            return self.slot
        if not (_private_directory(self.directory.parent)
                and _private_directory(self.directory)):
            return None
        for index in range(MAX_SLOTS):
            path = self._slot_path(index)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600)
            except OSError:
                return None  # the folder refuses files: behave as a lone worker
            try:
                # The lock, not the file's existence, decides who owns a slot: of two
                # workers starting together exactly one gets it, and a file left by a dead
                # worker is free again because the kernel dropped its lock.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    continue  # held by a live worker (or probed by a counter this instant)
                return None  # no locks on this file system
            info = os.fstat(fd)
            self._fd, self.slot, self._identity = fd, index, (info.st_dev, info.st_ino)
            return index
        return None

    def release(self) -> None:
        """Give the slot up. The file stays: deleting it could race with a worker opening it
        and leave two workers locking different files of the same name."""
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
        self._fd, self.slot, self._identity = None, None, None

    def count(self) -> int:
        """Live workers of this study on this host, this one included.

        If the slot file was removed under this worker (a temporary-file cleaner), the slot
        is claimed again first, so that workers starting later still see this one.

        Returns:
            The number of locked slots other than this worker's, plus one; 1 when this
            worker holds no slot (the registry is unusable, so it runs as a lone worker) or
            the registry cannot be read. Never raises for file-system reasons.
        """
        if self._fd is not None and not self._still_registered():
            self.release()
            self.claim()
        if self.slot is None:  # a folder not trusted or not usable is not read either
            return 1
        try:
            paths = list(self.directory.glob("slot-*.lock"))
        except OSError:
            return 1
        own = self._slot_path(self.slot)
        return 1 + sum(_is_locked(path) for path in paths if path != own)

    def _slot_path(self, index: int) -> Path:
        return self.directory / f"slot-{index}.lock"

    def _still_registered(self) -> bool:
        """True if this worker's slot path still names the file it holds locked."""
        assert self.slot is not None
        try:
            info = self._slot_path(self.slot).lstat()
        except OSError:
            return False
        return (info.st_dev, info.st_ino) == self._identity


class ThreadPolicy:
    """The torch threads of one worker, recomputed as workers of its study come and go.

    Call :meth:`refresh` before every trial: the first of two workers started side by side
    then drops from all CPUs to its share as soon as the second appears.

    Attributes:
        requested: Threads asked for with ``--threads``, or None for the shared default.
        workers: This worker's registration, or None to count it as alone.
        threads: The thread count applied last, or None before the first refresh.
    """

    def __init__(self, requested: int | None, workers: HostWorkers | None, *,
                 cpus: int | None = None,
                 apply: Callable[[int], None] = apply_threads) -> None:
        """Check ``requested``; nothing is applied until :meth:`refresh`.

        Args:
            requested: Threads asked for with ``--threads``, or None for the default.
            workers: This worker's (entered) registration, or None.
            cpus: CPUs to share; None reads :func:`available_cpus` at every refresh, so an
                affinity changed while running is followed.
            apply: Sets the thread count (replaceable for tests).

        Raises:
            ConfigError: ``requested`` is below 1.
        """
        validate_threads(requested)
        self.requested = requested
        self.workers = workers
        self.threads: int | None = None
        self._cpus = cpus
        self._apply = apply

    def refresh(self) -> int:
        """Recompute the thread count and apply it if it changed.

        Returns:
            The thread count now in effect.
        """
        if self.requested is not None:  # fixed by the user: no need to count workers
            wanted = self.requested
        else:
            workers = self.workers.count() if self.workers is not None else 1
            cpus = self._cpus if self._cpus is not None else available_cpus()
            wanted = threads_for(None, workers, cpus)
        if wanted != self.threads:
            self._apply(wanted)
            self.threads = wanted
        return wanted


def use_threads(requested: int | None) -> int:
    """Apply the threads of a lone process (``dse train``, ``dse probe``): ``requested``,
    else every CPU it may run on. Returns the count applied."""
    return ThreadPolicy(requested, None).refresh()
