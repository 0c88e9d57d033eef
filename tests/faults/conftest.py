"""The fault suite (issue 8): every test in tests/faults is marked ``faults``
(``pytest -m faults`` runs it alone; plain ``pytest`` runs it with the rest)."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.faults)
