"""Small helpers shared by the logic tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from synthqa.server.pipeline.errors import InvalidArgument


def violations(error: InvalidArgument) -> dict[str, str]:
    return {v.field: v.description for v in error.violations}


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait for `condition` by polling the event loop; a generous limit keeps a busy machine
    from failing the test, and the test still fails if the condition never holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)
