"""Which asyncio event loop a worker process runs on (CLIENTSHIFT_EVENT_LOOP)."""

from __future__ import annotations

import asyncio
from typing import Callable


def use_event_loop(name: str) -> None:
    """Run the process's asyncio loops on uvloop unless told `asyncio`; call it before any loop exists.

    Faust's path for a message is asyncio futures, queues and callbacks, in the worker's loop and in its
    consumer thread's; uvloop (Faust's supported alternative) runs them in C. On `clientshift bench
    worker` it cut a worker's CPU per event by about an eighth and a minimal Faust agent's by a fifth.
    """
    if name == "uvloop":
        import mode.loop

        mode.loop.use("uvloop")  # an event loop policy: every loop made from here on, in any thread


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The same choice for one `asyncio.Runner` rather than the whole process (None: asyncio's own)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None
