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
import dataclasses
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import optuna
from optuna.storages.journal import (
    BaseJournalBackend,
    JournalFileBackend,
    JournalFileSymlinkLock,
)

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
    """Whether ``line`` is an Optuna journal record: a JSON object with its op_code."""
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return False
    return isinstance(record, dict) and "op_code" in record


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


@dataclasses.dataclass
class _Repair:
    """What a repair keeps of a journal file's lines, and what it removes."""

    lines: int                        # lines ended by a newline
    kept: list[bytes]                 # their complete records, in order
    torn: list[dict[str, int]]        # line number and bytes removed
    salvaged: int                     # records kept from after a torn part of a line
    tail: bytes                       # what follows the last newline: b"" in an intact file
    completed: bool                   # the tail is a whole record that only lacks its newline

    @classmethod
    def of(cls, data: bytes) -> "_Repair":
        lines = data.split(b"\n")
        tail = lines.pop()
        kept: list[bytes] = []
        torn: list[dict[str, int]] = []
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
        if tail and not completed:
            torn.append({"line": len(lines) + 1, "bytes": len(tail)})
        return cls(len(lines), kept, torn, salvaged, tail, completed)

    @property
    def records(self) -> list[bytes]:
        """The records the repaired file holds."""
        return self.kept + ([self.tail] if self.completed else [])

    @property
    def changes(self) -> bool:
        return bool(self.torn) or self.completed


def repair_journal(path: Path) -> dict[str, Any]:
    """Remove the torn parts of a journal file, holding its lock; keep every complete
    record. A torn last line is cut off (or, when it is a whole record that only lacks its
    newline, completed); a torn line that more was written after loses its torn part and
    keeps the records after it. What would be kept is read as a journal first: a file that
    is no Optuna journal, or that cannot be written, is refused and left as it is. The
    original is copied to ``PATH.bak-<time>`` before the file changes (and removed if the
    change fails). Returns what was done and the studies the file then holds."""
    if not path.is_file():
        raise ConfigError(f"no journal file at {path}")
    _check_writable(path.parent, path, why="its lock and backup are made beside it")
    with _locked(JournalFileSymlinkLock(str(path))):
        data = path.read_bytes()
        repair = _Repair.of(data)
        if data.strip() and not repair.records:
            raise ConfigError(f"{path} holds no Optuna journal record in its {len(data):,} "
                              "bytes: is it a journal file? Left as it is")
        storage = _replayed(repair.records, path)  # before anything is written
        backup = None
        if repair.changes:
            _check_writable(path, path, why="it is rewritten")
            backup = _write_repair(path, data, repair)
    studies = [{"study": study.study_name,
                "trials": len(storage.get_all_trials(study._study_id, deepcopy=False))}
               for study in storage.get_all_studies()]
    return {"journal": str(path), "changed": backup is not None,
            "backup": None if backup is None else str(backup),
            "removed_bytes": sum(entry["bytes"] for entry in repair.torn),
            "torn_lines": repair.torn, "salvaged_records": repair.salvaged,
            "completed_last_line": repair.completed, "records": len(repair.records),
            "studies": studies}


def _check_writable(target: Path, path: Path, *, why: str) -> None:
    # os.access also sees a read-only file system and an immutable file or folder
    if not os.access(target, os.W_OK):
        raise ConfigError(f"cannot repair {path}: {target} is not writable ({why}); left as "
                          "it is")


class _Records(BaseJournalBackend):
    """Journal records in memory, read as Optuna reads a journal file (never written)."""

    def __init__(self, lines: list[bytes]) -> None:
        self._logs = [json.loads(line) for line in lines]

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        return self._logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        raise AssertionError("a journal being repaired is only read")


def _replayed(records: list[bytes], path: Path) -> optuna.storages.JournalStorage:
    """The storage ``records`` make; records Optuna cannot replay are a ConfigError."""
    try:  # Optuna raises many kinds for records that are not its own
        storage = optuna.storages.JournalStorage(_Records(records))
        storage.get_all_studies()
    except Exception as exc:
        raise ConfigError(f"{path} holds JSON records that Optuna cannot read as a journal "
                          f"({type(exc).__name__}): is it a journal file? Left as it is"
                          ) from None
    return storage


def _write_repair(path: Path, data: bytes, repair: _Repair) -> Path:
    """Write the repair (a backup first); a write that fails removes the backup, and leaves
    the file as it was (replaced whole, cut or appended to in one call)."""
    backup = _backup_path(path)
    try:
        shutil.copy2(path, backup)
        if any(entry["line"] <= repair.lines for entry in repair.torn):  # inside: rewrite
            temporary = path.with_name(f"{path.name}.repair-{os.getpid()}")
            try:
                with open(temporary, "wb") as handle:
                    handle.write(b"".join(line + b"\n" for line in repair.records))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, path)
            finally:
                temporary.unlink(missing_ok=True)
        elif repair.completed:
            with open(path, "ab") as handle:
                handle.write(b"\n")
                handle.flush()
                os.fsync(handle.fileno())
        else:
            os.truncate(path, len(data) - len(repair.tail))
    except OSError as exc:
        with contextlib.suppress(OSError):
            backup.unlink(missing_ok=True)
        raise ConfigError(f"cannot repair {path}: {exc.strerror or type(exc).__name__}; left "
                          "as it is") from None
    return backup
