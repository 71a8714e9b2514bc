"""Reading a study never loads torch: the study stores what the reports need (what the
modules import at all: tests/test_layering.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from toy import toy_prepared

from dse.commands.search import run_search

ROOT = Path(__file__).resolve().parents[3]
PROBE = """
import sys
sys.path.insert(0, {root!r})
import cli
for args in {commands!r}:
    try:
        cli.cli.main(args, standalone_mode=False)
    except SystemExit as exit:
        if exit.code:
            sys.exit(f"{{args}}: exit {{exit.code}}")
print("torch loaded" if "torch" in sys.modules else "no torch")
"""


@pytest.mark.slow
def test_read_only_commands_run_without_torch(toy_table, tmp_path):
    prepared = toy_prepared(toy_table, tmp_path, trials=5, sampler="random")
    run_search(prepared)
    folder = str(prepared.out_dir)
    commands = [["pareto", folder], ["status", folder], ["show", folder, "--trial", "2"]]
    code = PROBE.format(root=str(ROOT), commands=commands)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("no torch")
