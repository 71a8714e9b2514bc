"""Journal files that a worker lost in the middle of a write leaves torn.

Optuna's journal is one JSON record a line, appended under a lock file. A node lost (or a
disk filled) in the middle of an append leaves the file ending in part of a line. Optuna's
reader skips such a line as a write still in progress, but the next append glues its
record to it, and from then on no command can read the study. So ``open_journal`` looks at
the end of the file before it is read or written and refuses a torn one with one line
naming the file, the size of the torn tail and the repair; every append checks again, under
the lock, that the file still ends with a complete line (another worker may have been lost
since). ``repair_journal`` (``dse repair-journal PATH``) keeps a copy of the file, removes
the torn tail (and, in a file already written after a torn line, the torn part of that
line, keeping the record written after it) and checks that the study reads again.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from hw_models.errors import ConfigError

RECORD_START = b'{"op_code":'   # how Optuna writes every record
_BLOCK = 1 << 16


class TornJournal(ConfigError):
    """A journal file whose last line is incomplete or damaged (one line, with the repair)."""


def _repair_hint(path: Path) -> str:
    return (f"the file is left as it is: run `dse repair-journal {path}` (it keeps a backup "
            "and removes the torn part), then run the command again")


def last_line(path: Path) -> tuple[bytes, bool]:
    """The file's last line (without its newline) and whether the file ends with one."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(size - 1)
        ends = handle.read(1) == b"\n"
        end = size - 1 if ends else size
        chunks: list[bytes] = []
        while end > 0:
            start = max(0, end - _BLOCK)
            handle.seek(start)
            chunk = handle.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                chunks.append(chunk[newline + 1:])
                break
            chunks.append(chunk)
            end = start
    return b"".join(reversed(chunks)), ends


def damage(path: Path) -> str | None:
    """What is wrong with the end of the journal file (None: empty, or ends with a complete
    record and its newline)."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    line, ends = last_line(path)
    if not ends:
        return (f"journal {path} ends in a torn line ({len(line)} bytes after its last "
                "complete line: a write cut short, e.g. a node lost while writing)")
    if not _is_record(line):
        return (f"journal {path} ends in a damaged line ({len(line) + 1} bytes that are not "
                "a complete record: a write cut short, then written after)")
    return None


def _ends_cleanly(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return True
    with open(path, "rb") as handle:
        handle.seek(size - 1)
        return handle.read(1) == b"\n"


@contextlib.contextmanager
def _locked(lock: JournalFileSymlinkLock) -> Iterator[None]:
    """The journal's lock file (Optuna's writers append under it)."""
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


class CheckedJournalFileBackend(JournalFileBackend):
    """Optuna's journal file, that appends only after a complete line."""

    def __init__(self, path: Path) -> None:
        self._checked_path = path
        self._checked_lock = JournalFileSymlinkLock(str(path))
        self._holder: int | None = None  # the thread holding the lock through ``appending``
        super().__init__(str(path), lock_obj=self._checked_lock)

    @contextlib.contextmanager
    def appending(self) -> Iterator[None]:
        """Hold the file's lock for this thread: no other worker appends until the block
        ends, so what it reads to the end of the file and then appends is one step."""
        with _locked(self._checked_lock):
            self._holder = threading.get_ident()
            try:
                yield
            finally:
                self._holder = None

    def append_logs(self, logs: Sequence[dict[str, Any]]) -> None:
        """As Optuna's; refused (``TornJournal``) if the file does not end with a newline."""
        text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        held = self._holder == threading.get_ident()  # inside this thread's ``appending``
        with contextlib.nullcontext() if held else _locked(self._checked_lock):
            if not _ends_cleanly(self._checked_path):
                raise TornJournal(f"{damage(self._checked_path)}; nothing more is written to "
                                  f"it; {_repair_hint(self._checked_path)}")
            with open(self._checked_path, "ab") as handle:
                handle.write(text.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())


def open_journal(path: Path) -> optuna.storages.JournalStorage:
    """The journal storage of ``path`` (made if missing), refused if it is torn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    found = damage(path)
    if found is not None:  # perhaps a write in progress: look again holding the lock
        with _locked(JournalFileSymlinkLock(str(path))):
            found = damage(path)
    if found is not None:
        raise TornJournal(f"{found}; {_repair_hint(path)}")
    try:
        return optuna.storages.JournalStorage(CheckedJournalFileBackend(path))
    except ValueError as exc:  # Optuna's reader: "Invalid log format", JSONDecodeError
        raise TornJournal(f"journal {path} cannot be read ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())}; a write cut short, then written "
                          f"after?); {_repair_hint(path)}") from None


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return False


def _complete_suffix(line: bytes) -> int | None:
    """Where a complete record written after a torn one starts in ``line`` (else None)."""
    start = line.find(RECORD_START, 1)
    while start != -1:
        if _is_record(line[start:]):
            return start
        start = line.find(RECORD_START, start + 1)
    return None


def _backup_path(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup, count = path.with_name(f"{path.name}.bak-{stamp}"), 1
    while backup.exists():
        count += 1
        backup = path.with_name(f"{path.name}.bak-{stamp}-{count}")
    return backup


def repair_journal(path: Path) -> dict[str, Any]:
    """Remove the torn parts of a journal file, holding its lock; keep every complete
    record. A torn last line is cut off (or, when it is a whole record that only lacks its
    newline, completed); a torn line that more was written after loses its torn part and
    keeps the records after it. The original is copied to ``PATH.bak-<time>`` first.
    Returns what was done and the studies the file then holds."""
    if not path.is_file():
        raise ConfigError(f"no journal file at {path}")
    with _locked(JournalFileSymlinkLock(str(path))):
        data = path.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # what follows the last newline: b"" in an intact file
        kept: list[bytes] = []
        torn: list[dict[str, int]] = []  # line number and bytes removed
        salvaged = 0
        for number, line in enumerate(lines, start=1):
            if _is_record(line):
                kept.append(line)
                continue
            start = _complete_suffix(line)
            if start is None:
                torn.append({"line": number, "bytes": len(line) + 1})
            else:
                kept.append(line[start:])
                torn.append({"line": number, "bytes": start})
                salvaged += 1
        completed = bool(tail) and _is_record(tail)
        if data.strip() and not kept and not completed:
            raise ConfigError(f"{path} holds no Optuna journal record in its {len(data):,} "
                              "bytes: is it a journal file? Left as it is")
        if tail and not completed:
            torn.append({"line": len(lines) + 1, "bytes": len(tail)})
        backup = None
        if torn or completed:
            backup = _backup_path(path)
            shutil.copy2(path, backup)
            if any(entry["line"] <= len(lines) for entry in torn):  # inside: rewrite
                temporary = path.with_name(f"{path.name}.repair-{os.getpid()}")
                kept.extend([tail] if completed else [])
                with open(temporary, "wb") as handle:
                    handle.write(b"".join(line + b"\n" for line in kept))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, path)
            elif completed:
                with open(path, "ab") as handle:
                    handle.write(b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                kept.append(tail)
            else:
                os.truncate(path, len(data) - len(tail))
    storage = open_journal(path)
    studies = [{"study": study.study_name,
                "trials": len(storage.get_all_trials(study._study_id, deepcopy=False))}
               for study in storage.get_all_studies()]
    return {"journal": str(path), "changed": backup is not None,
            "backup": None if backup is None else str(backup),
            "removed_bytes": sum(entry["bytes"] for entry in torn), "torn_lines": torn,
            "salvaged_records": salvaged, "completed_last_line": completed,
            "records": len(kept), "studies": studies}
