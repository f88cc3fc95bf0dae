"""Find a connector by name: the built-in ones and any third party's, through the
`clientshift.connectors` entry-point group (a new CRM is one module and one entry point)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Mapping

from connectors.base import Connector


class UnknownConnector(LookupError):
    pass


def available() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="clientshift.connectors"))


def load_connector(name: str, settings: Mapping[str, Any]) -> Connector:
    """Build the named connector; `settings` holds `env` (the environment) and command-line options."""
    for ep in entry_points(group="clientshift.connectors"):
        if ep.name == name:
            return ep.load()(settings)
    raise UnknownConnector(f"no connector named {name!r}; installed: {', '.join(available()) or 'none'}")
