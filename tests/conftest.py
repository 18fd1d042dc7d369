"""Marks every test under tests/e2e as `e2e`: `pytest -m "not e2e"` runs the logic tests alone,
in seconds, without starting an engine; a whole run takes them first. And the tests' Ray, for
the unit and e2e tests of synthqa.ray."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

E2E_DIR = Path(__file__).parent / "e2e"

# A Ray call made after a module's cluster is shut down must fail, not start a cluster of its
# own in pytest's process: in a fresh-clone run of 2026-12-07 one did, its GCS died, and Ray
# then ended its driver, pytest itself, with no summary. Read by Ray when it is imported.
os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")

# No per-example deadline: the logic tests share the two cores with the session server's
# start-up, and speed is measured by the benchmarks, not by the tests.
settings.register_profile("synthqa", deadline=None)
settings.load_profile("synthqa")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)
    # The logic tests first, in their order: the session server starts up meanwhile
    # (tests/e2e/conftest.py).
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray cluster of the machine's two CPUs, once per module that asks."""
    import ray

    # Ray waits 30 s for its GCS to start by default; on these two busy cores (a server
    # starting beside it) that once ran out, 2026-12-07. Ray's own override, kept if set.
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "120")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()
