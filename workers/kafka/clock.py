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
        return _file_clock(Path(arg))
    raise ValueError(f"unknown clock {spec!r}: use system, fixed:TIME, offset:SECONDS or file:PATH")


def _file_clock(path: Path) -> Clock:
    last: float | None = None

    def read() -> float:
        nonlocal last
        text = path.read_text(encoding="utf-8").strip()
        # `echo TIME > file` and `Path.write_text` empty the file before they write it: a reader can find it
        # empty for a moment while its time moves, and then the time is still the last one read. Once,
        # that stopped a worker in CI (its deadline timer raised).
        if text or last is None:
            try:
                last = parse_rfc3339(text)
            except ValueError as exc:
                raise ValueError(f"clock file {path}: {exc}") from None
        return last

    return read
