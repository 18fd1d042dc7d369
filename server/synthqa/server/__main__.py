"""Entry point: `python -m synthqa.server --model PATH_OR_NAME [--port N] [vLLM flags]`."""

from __future__ import annotations

import logging
import os
import sys

import uvloop

from .config import parse
from .heap import map_large_blocks
from .lifecycle import ServerLifecycle
from .observability.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    engine_args, settings = parse(argv)
    configure_logging(settings.log_level, settings.log_format)
    map_large_blocks()
    return serve(ServerLifecycle(engine_args, settings))


def serve(lifecycle: ServerLifecycle) -> int:
    """Runs the server until it stops; the exit code (1 when it could not start)."""

    async def run() -> None:
        lifecycle.install_signal_handlers()
        await lifecycle.run()

    try:
        uvloop.run(run())
    except RuntimeError as error:
        logging.getLogger("synthqa.server").error("%s", error)
        return 1
    return 0


def exit_now(code: int) -> None:
    """Everything is stopped by now; the interpreter's own teardown (torch, vLLM, a large heap)
    would only add seconds to every stop. Flush what was written, then leave."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def console_script() -> None:
    """The `synthqa-server` command."""
    exit_now(main())


# The engine core starts with `spawn`, which re-imports this module: the guard keeps the child
# from starting a server of its own.
if __name__ == "__main__":
    exit_now(main())

