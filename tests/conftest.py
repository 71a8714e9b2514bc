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


@pytest.fixture
def fresh_data_caches():
    """The process's loaded datasets and data digests forgotten before and after the test
    (tests that make datasets of their own under one name use it)."""
    from networks import data_identity
    from networks.datasets import clear_dataset_cache
    clear_dataset_cache()
    data_identity.forget_digests()
    yield
    clear_dataset_cache()
    data_identity.forget_digests()
