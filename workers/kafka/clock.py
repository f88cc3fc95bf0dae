"""The wall clock the deadline timer reads, injectable for tests and demos. Rules never see it: it only
decides when a deadline is due; the deadline is still evaluated at its own instant."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from workers.timeutil import parse_rfc3339

Clock = Callable[[], float]


def make_clock(spec: str) -> Clock:
    """`system`, `fixed:<RFC 3339>`, `offset:<seconds>` or `file:<path>` (the file holds an RFC 3339 time
    and is re-read each call, so a test or the demo can move time forward in a running worker)."""
    kind, _, arg = spec.partition(":")
    if kind == "system":
        return time.time
    if kind == "fixed":
        frozen = parse_rfc3339(arg)
        return lambda: frozen
    if kind == "offset":
        shift = float(arg)
        return lambda: time.time() + shift
    if kind == "file":
        path = Path(arg)
        return lambda: parse_rfc3339(path.read_text(encoding="utf-8").strip())
    raise ValueError(f"unknown clock {spec!r}: use system, fixed:TIME, offset:SECONDS or file:PATH")
