"""A stand-in accuracy estimator for storage-fault tests: at its ``DSE_TEST_DROP_AT``-th
call it terminates every other connection to the database ``DSE_TEST_DROP_URL`` (as an
administrator's ``pg_terminate_backend`` or a server restart would), and with
``DSE_TEST_DROP_FOR_GOOD=1`` first stops the database from accepting new ones."""
from __future__ import annotations

import os

from dse.accuracy import ProbeCandidate, ProbeResult

CALLS = [0]


def drop_connections(url: str, *, for_good: bool = False, allow: bool = False) -> int:
    """Terminate every connection to the database of ``url`` (from the server's ``postgres``
    database); how many there were. ``for_good``: refuse new ones first; ``allow``: accept
    them again instead."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url, dbname="postgres", autocommit=True) as admin:
        if for_good or allow:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if allow:
            return 0
        return len(admin.execute("SELECT pg_terminate_backend(pid, 5000) FROM "
                                 "pg_stat_activity WHERE datname = %s", (name,)).fetchall())


def estimate(candidate: ProbeCandidate) -> ProbeResult:
    CALLS[0] += 1
    if CALLS[0] == int(os.environ.get("DSE_TEST_DROP_AT", "0")):
        dropped = drop_connections(os.environ["DSE_TEST_DROP_URL"],
                                   for_good=os.environ.get("DSE_TEST_DROP_FOR_GOOD") == "1")
        assert dropped > 0  # the worker's pooled connections
    accuracy = 0.95 - 0.0005 * sum(candidate.n_analog) - 100 * max(candidate.weight_ber)
    return ProbeResult(accuracy, 0.0, (accuracy,), 0.0, False)
