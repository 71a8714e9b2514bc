from __future__ import annotations

import pytest
from toy import TOY_LAYERS

from hw_models import LayerTable


@pytest.fixture(scope="session")
def toy_table() -> LayerTable:
    return LayerTable.from_records(TOY_LAYERS)
