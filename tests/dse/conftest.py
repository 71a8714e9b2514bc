from __future__ import annotations

import pytest

from hw_models import LayerTable
from toy import TOY_LAYERS


@pytest.fixture(scope="session")
def toy_table() -> LayerTable:
    return LayerTable.from_records(TOY_LAYERS)
