from __future__ import annotations

import pytest
from helpers import resnet20_records

from hw_models import LayerTable, Soc, load_soc


@pytest.fixture(scope="session")
def soc() -> Soc:
    return load_soc("diana")


@pytest.fixture(scope="session")
def resnet20_table() -> LayerTable:
    return LayerTable.from_records(resnet20_records())
