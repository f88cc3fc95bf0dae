"""JSON-lines logging. Account and event ids go in as fields; event bodies never do at info level."""

from __future__ import annotations

from typing import Any


def logging_config(level: str = "info") -> dict[str, Any]:
    """A dictConfig for the worker (Faust takes it as `logging_config`)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }
