from __future__ import annotations

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
