"""Thread shares for workers of one study on one host (dse.threads)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from dse import threads
from dse.threads import HostWorkers, ThreadPolicy, apply_threads, available_cpus, threads_for
from hw_models.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

# A worker in another process: claims a slot, reports it on stdout, then waits for stdin
# to close (or for a signal), so the test decides when it goes away.
CHILD = """
import sys
from dse.threads import HostWorkers
with HostWorkers(sys.argv[1]) as workers:
    print(workers.slot, flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def tmpdir_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Registry under a fresh temporary directory, for this process and its children."""
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    return tmp_path


def start_child(key: str) -> tuple[subprocess.Popen[str], int]:
    """A child worker holding a slot of ``key``; returns it and its slot once claimed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, key], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    line = child.stdout.readline()  # blocks until the slot is held: no timing involved
    assert line.strip().isdigit(), f"child did not claim a slot: {line!r}"
    return child, int(line)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait()
        if child.stdin is not None:
            child.stdin.close()
        if child.stdout is not None:
            child.stdout.close()


@pytest.mark.parametrize(("requested", "workers", "cpus", "expected"), [
    (None, 1, 2, 2), (None, 2, 2, 1), (None, 3, 2, 1), (None, 2, 16, 8), (None, 3, 16, 5),
    (None, 0, 4, 4), (None, 1, 1, 1), (3, 2, 2, 3), (1, 1, 64, 1)])
def test_threads_for(requested: int | None, workers: int, cpus: int, expected: int) -> None:
    assert threads_for(requested, workers, cpus) == expected


@pytest.mark.parametrize("requested", [0, -2])
def test_threads_below_one_is_a_config_error(requested: int) -> None:
    with pytest.raises(ConfigError, match="--threads") as info:
        threads_for(requested, 1, 4)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="--threads"):
        ThreadPolicy(requested, None, apply=lambda n: None)


def test_available_cpus_follows_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    if hasattr(os, "sched_getaffinity"):
        assert available_cpus() == len(os.sched_getaffinity(0))
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    assert available_cpus() == 7
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert available_cpus() == 1


def test_same_key_counts_both_other_key_apart(tmpdir_registry: Path) -> None:
    with HostWorkers("sqlite:///a.db|s") as first, HostWorkers("sqlite:///a.db|s") as second:
        assert {first.slot, second.slot} == {0, 1}
        assert first.count() == second.count() == 2
        with HostWorkers("sqlite:///a.db|other") as other:
            assert other.count() == 1
            assert other.directory != first.directory
            assert first.count() == 2
    with HostWorkers("sqlite:///a.db|s") as again:
        assert again.slot == 0  # both slots were released; the files are reused
        assert again.count() == 1


def test_registry_layout(tmpdir_registry: Path) -> None:
    import hashlib

    key = "journal:/x/j.log|study"
    with HostWorkers(key) as workers:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        assert workers.directory == tmpdir_registry / f"dse-workers-{os.getuid()}" / digest
        assert (workers.directory / "slot-0.lock").is_file()


def test_stale_slot_file_is_reused(tmpdir_registry: Path) -> None:
    directory = HostWorkers("k").directory
    directory.mkdir(parents=True)
    for index in range(3):  # left behind by workers that died
        (directory / f"slot-{index}.lock").write_text("")
    with HostWorkers("k") as workers:
        assert workers.slot == 0
        assert workers.count() == 1


def test_child_worker_counts_until_killed(tmpdir_registry: Path,
                                          children: list[subprocess.Popen[str]]) -> None:
    with HostWorkers("k") as mine:
        child, slot = start_child("k")
        children.append(child)
        assert slot != mine.slot
        assert mine.count() == 2
        child.send_signal(signal.SIGKILL)  # no cleanup runs in the child
        child.wait()
        assert mine.count() == 1
        with HostWorkers("k") as successor:  # the dead worker's slot is free again
            assert successor.slot == slot
            assert mine.count() == 2


def test_workers_starting_together_get_distinct_slots(
        tmpdir_registry: Path, children: list[subprocess.Popen[str]]) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(4):  # all started before any is read, so their claims overlap
        children.append(subprocess.Popen([sys.executable, "-c", CHILD, "k"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True, env=env))
    slots = []
    for child in children:
        assert child.stdout is not None
        slots.append(int(child.stdout.readline()))
    assert sorted(slots) == [0, 1, 2, 3]
    with HostWorkers("k") as mine:
        assert mine.slot == 4
        assert mine.count() == 5


@pytest.mark.parametrize("kind", ["under-a-file", "registry-is-a-file", "read-only"])
def test_unusable_tempdir_means_a_lone_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              kind: str) -> None:
    if kind == "under-a-file":
        (tmp_path / "file").write_text("")
        unusable = tmp_path / "file" / "tmp"
    elif kind == "registry-is-a-file":
        unusable = tmp_path
        (tmp_path / f"dse-workers-{os.getuid()}").write_text("")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        unusable = tmp_path / "ro"
        unusable.mkdir(mode=0o500)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(unusable))
    with HostWorkers("k") as workers, HostWorkers("k") as other:
        assert workers.slot is None and other.slot is None
        assert workers.count() == 1
    calls: list[int] = []
    with HostWorkers("k") as workers:
        assert ThreadPolicy(None, workers, cpus=2, apply=calls.append).refresh() == 2
    assert calls == [2]


def test_registry_owned_by_someone_else_is_not_used(tmpdir_registry: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with HostWorkers("k") as first:
        assert first.slot == 0
        monkeypatch.setattr(os, "getuid", lambda: 12345)  # the folders now look foreign
        registry = tmpdir_registry / "dse-workers-12345"
        registry.symlink_to(first.directory.parent)  # planted link to a foreign folder
        with HostWorkers("k") as second:
            assert second.slot is None
            assert second.count() == 1


def test_removed_slot_file_is_claimed_again(tmpdir_registry: Path) -> None:
    with HostWorkers("k") as first:
        (first.directory / "slot-0.lock").unlink()  # a temporary-file cleaner
        assert first.count() == 1
        assert first.slot == 0
        with HostWorkers("k") as second:
            assert second.slot == 1  # slot 0 is held again, so the newcomer sees it
            assert second.count() == 2


def test_policy_applies_only_on_change(tmpdir_registry: Path) -> None:
    calls: list[int] = []
    with HostWorkers("k") as mine:
        policy = ThreadPolicy(None, mine, cpus=2, apply=calls.append)
        assert policy.threads is None
        assert policy.refresh() == 2
        assert policy.refresh() == 2
        assert calls == [2]
        with HostWorkers("k"):  # a second worker of the study appears
            assert policy.refresh() == 1
            assert policy.refresh() == 1
        assert calls == [2, 1]
        assert policy.refresh() == 2  # and goes
    assert calls == [2, 1, 2]
    assert policy.threads == 2


def test_policy_with_requested_threads_ignores_workers(tmpdir_registry: Path) -> None:
    calls: list[int] = []
    with HostWorkers("k") as mine, HostWorkers("k"):
        policy = ThreadPolicy(3, mine, cpus=2, apply=calls.append)
        assert policy.refresh() == policy.refresh() == 3
    assert calls == [3]
    alone = ThreadPolicy(None, None, cpus=4, apply=calls.append)
    assert alone.refresh() == 4


def test_apply_threads_sets_torch_and_child_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "5")  # the user's choice stays
    monkeypatch.setattr(threads, "_variables_set_here", set())
    try:
        apply_threads(1)
        assert torch.get_num_threads() == 1
        assert os.environ["OMP_NUM_THREADS"] == "1"
        apply_threads(2)  # repeated calls are fine, the interop pool is left alone
        assert torch.get_num_threads() == 2
        assert os.environ["OMP_NUM_THREADS"] == "2"  # set here, so it follows
        assert os.environ["MKL_NUM_THREADS"] == "5"
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError):
        apply_threads(0)
