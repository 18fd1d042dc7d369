"""Marks every test under tests/e2e as `e2e`: `pytest -m "not e2e"` runs the logic tests alone,
in seconds, without starting an engine."""

from __future__ import annotations

from pathlib import Path

import pytest

E2E_DIR = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)
