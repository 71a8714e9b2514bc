"""A study attribute claimed in one step: decided and written under the storage's own lock."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from dse.storage.atomic import set_study_attr_unless
from dse.storage.storage import open_storage


@pytest.fixture(params=["journal", "postgresql", "mysql", "sqlite", "memory"])
def url(request, tmp_path) -> str | None:
    servers = {"postgresql": "postgres_url", "mysql": "mysql_url"}
    if request.param in servers:
        return request.getfixturevalue(servers[request.param])
    return {"journal": f"journal:{tmp_path / 'study.log'}",
            "sqlite": f"sqlite:///{tmp_path / 'study.db'}", "memory": None}[request.param]


def _study(url: str | None) -> optuna.Study:
    return optuna.create_study(storage=None if url is None else open_storage(url))


def test_an_attribute_is_set_unless_the_study_holds_what_forbids_it(url):
    study = _study(url)
    study.set_user_attr("other", 1)
    seen = []

    def taken(attrs):
        seen.append(dict(attrs))
        return "claim" in attrs
    assert set_study_attr_unless(study, "claim", {"worker": "a"}, taken)
    assert not set_study_attr_unless(study, "claim", {"worker": "b"}, taken)
    assert study.user_attrs["claim"] == {"worker": "a"}
    assert seen == [{"other": 1}, {"other": 1, "claim": {"worker": "a"}}]


def test_a_journal_is_locked_while_the_claim_is_decided(tmp_path):
    """No other worker appends between the read that decides and the write."""
    study = _study(f"journal:{tmp_path / 'study.log'}")
    lock = Path(f"{tmp_path / 'study.log'}.lock")

    def taken(attrs):
        assert lock.exists()  # Optuna's lock file: every other writer waits for it
        return False
    assert set_study_attr_unless(study, "claim", 1, taken)
    assert not lock.exists()
    study.set_user_attr("after", 2)  # the storage writes as before
    assert study.user_attrs == {"claim": 1, "after": 2}


def test_a_database_locks_the_studys_row_while_the_claim_is_decided(postgres_url):
    """Another worker's claim (which locks the same row first) waits for this one."""
    import psycopg
    study = _study(postgres_url)
    other = psycopg.connect(postgres_url)
    try:
        def taken(attrs):
            with pytest.raises(psycopg.errors.LockNotAvailable), other.transaction():
                other.execute("SELECT study_id FROM studies WHERE study_id = %s "
                              "FOR UPDATE NOWAIT", (study._study_id,))
            return False
        assert set_study_attr_unless(study, "claim", 1, taken)
        with other.transaction():  # free again
            other.execute("SELECT study_id FROM studies WHERE study_id = %s FOR UPDATE NOWAIT",
                          (study._study_id,))
    finally:
        other.close()
    assert study.user_attrs == {"claim": 1}
