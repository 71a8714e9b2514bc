"""One meaning per option: the DRAM device is --dram and the torch device --device in every
command. A retired spelling stops with one line naming the new one, exit 2."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from cli import cli


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def assert_one_error(result: Result, *words: str) -> None:
    """Exit 2, nothing on stdout, one `dse: error:` line on stderr holding every word."""
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dse: error:"), result.stderr
    assert result.stdout == "" and "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]


def test_dram_takes_the_device_as_dram():
    point = json.loads(run("dram", "--dram", "lpddr4-3200", "--vdd", "1.0", "--json").stdout)
    assert point["device"] == "lpddr4-3200" and point["vdd_v"] == 1.0


@pytest.mark.parametrize("args, new", [
    (["dram", "--device", "lpddr4-3200"], "dse dram --device is now --dram"),
    (["dram", "--device"], "dse dram --device is now --dram"),
    (["dram", "--list", "--device", "lpddr4-3200"], "dse dram --device is now --dram"),
])
def test_retired_spelling_names_the_new_one(args, new):
    assert_one_error(run(*args), new)
