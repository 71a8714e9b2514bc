"""Shared fixtures of the dse tests: the toy layer table, no figures unless asked, and the
databases for the tests of many workers and of storage faults (a fresh one per test)."""
from __future__ import annotations

import os
import uuid

import pytest
from toy import TOY_LAYERS

from hw_models import LayerTable


@pytest.fixture(scope="session")
def toy_table() -> LayerTable:
    return LayerTable.from_records(TOY_LAYERS)


@pytest.fixture(autouse=True)
def no_plots_unless_asked(request, monkeypatch):
    """Drawing the figures takes most of a short search's time: only tests marked
    ``plots`` draw them (in-process runs; a subprocess always draws)."""
    if request.node.get_closest_marker("plots") is None:
        monkeypatch.setattr("dse.results.outputs.write_plots", lambda *args, **kwargs: [])


ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _driver(module: str, extra: str):
    """The database driver; its absence skips the test, except in CI, where it fails."""
    if os.environ.get("CI"):
        return __import__(module)
    return pytest.importorskip(module, reason=f"pip install 'dse[{extra}]'")


def _no_server(kind: str, exc: Exception) -> None:
    if os.environ.get("CI"):
        raise exc
    pytest.skip(f"no {kind} server on 127.0.0.1 ({exc})")


@pytest.fixture
def postgres_url():
    """A fresh database for the test, dropped afterwards; skipped (never in CI) without one."""
    psycopg = _driver("psycopg", "postgres")
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _no_server("PostgreSQL", exc)
    name = f"dse_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def mysql_url():
    """As ``postgres_url``, on the MySQL/MariaDB server (root, no password, port 3306)."""
    pymysql = _driver("pymysql", "mysql")
    try:
        admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="",
                                autocommit=True, connect_timeout=3)
    except pymysql.err.OperationalError as exc:
        _no_server("MySQL", exc)
    name = f"dse_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
    try:
        yield f"mysql://root@127.0.0.1:3306/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()
