"""Worker identity and liveness on this host."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from dse.host import dead_here, worker_identity


def test_this_process_is_alive_and_a_finished_one_is_dead():
    me = worker_identity()
    assert me["pid"] == os.getpid() and me["host"]
    assert not dead_here(me)
    code = "import json, dse.host; print(json.dumps(dse.host.worker_identity()))"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    gone = json.loads(child.stdout)
    assert dead_here(gone) == (me["pidns"] is not None)


def test_workers_elsewhere_are_never_judged_dead():
    me = worker_identity()
    assert not dead_here({**me, "host": "another-node", "pid": 999_999_999})
    assert not dead_here({**me, "pidns": "another-namespace", "pid": 999_999_999})
    assert not dead_here({})
