"""`clientshift run --config FILE`: the worker's settings from a YAML file.

A file suits what is awkward as a dozen environment variables: one checked-in file per environment, or
a ConfigMap. It speaks the same names as the environment, so the README's table documents both: a key
is a `CLIENTSHIFT_*` variable without the prefix, in lower case, and a mapping nests with `_`
(`topic: {events: crm.events}` is `CLIENTSHIFT_TOPIC_EVENTS`). The file fills in what the environment
leaves unset, so one run can still override a setting with a variable.

Secrets are refused here: they come from the environment or a Kubernetes Secret (or a `*_FILE` path
to one), never from a file that is likely to be committed or shared.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping, MutableMapping

import yaml

from workers.kafka.settings import Settings, Topics

PREFIX = "CLIENTSHIFT_"

# Settings fields whose variable is not simply CLIENTSHIFT_<FIELD>.
_RENAMED = {"security_protocol": "BROKER_SECURITY_PROTOCOL"}

# Read outside workers.kafka.settings: by connectors and the HubSpot event normalizer.
_ELSEWHERE = (
    "SASL_PASSWORD_FILE",
    "HUBSPOT_COMPANY_OBJECT", "HUBSPOT_PERSON_OBJECT", "HUBSPOT_ID_PROPERTY", "HUBSPOT_PROPERTY_GROUP",
    "HUBSPOT_TASK_KEY_PROPERTY", "HUBSPOT_ENSURE_PROPERTIES", "HUBSPOT_RATE_PER_10S",
    "HUBSPOT_SEARCH_RATE_PER_S", "HUBSPOT_TIMEOUT", "HUBSPOT_PUBLIC_URL", "HUBSPOT_CSM_PROPERTY",
    "HUBSPOT_MAPPING", "RECORDING_FILE",
)


def _known() -> frozenset[str]:
    names = {PREFIX + _RENAMED.get(f.name, f.name.upper()) for f in fields(Settings) if f.name != "topics"}
    names |= {f"{PREFIX}TOPIC_{f.name.upper()}" for f in fields(Topics)}
    names |= {PREFIX + name for name in _ELSEWHERE}
    return frozenset(names)


KNOWN = _known()
_SECRET = re.compile(r"(PASSWORD|TOKEN|SECRET)(?!.*_FILE$)")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


def read_config(path: Path) -> dict[str, str]:
    """The file's settings as environment variables (name -> text, as the environment would hold them)."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(loaded).__name__}")
    values: dict[str, str] = {}
    for key, value in _flatten(loaded, ()):
        name = PREFIX + "_".join(key).upper()
        where = f"{path}: {'.'.join(key)}"
        if _SECRET.search(name):
            # The value is not repeated: it is a secret that should not be in the file at all.
            raise ConfigError(f"{where}: secrets are not read from a config file; set {name} (or {name}_FILE) "
                              "in the environment or from a Kubernetes Secret")
        if name not in KNOWN:
            near = difflib.get_close_matches(name, KNOWN, n=1)
            hint = f" (did you mean {near[0][len(PREFIX):].lower()}?)" if near else ""
            raise ConfigError(f"{where}: unknown setting{hint}")
        if value is not None:  # `rules:` with nothing after it leaves the default
            values[name] = _as_text(value, where)
    return values


def apply_config(values: Mapping[str, str], environ: MutableMapping[str, str]) -> None:
    """Set the file's settings that the environment leaves unset."""
    for name, value in values.items():
        environ.setdefault(name, value)


def _flatten(mapping: Mapping[Any, Any], parent: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []
    for key, value in mapping.items():
        path = (*parent, str(key))
        if isinstance(value, Mapping):
            out.extend(_flatten(value, path))
        else:
            out.append((path, value))
    return out


def _as_text(value: Any, where: str) -> str:
    if isinstance(value, bool):  # before int: YAML's true is a bool, and bool is an int
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ConfigError(f"{where}: expected text, a number or true/false, got {type(value).__name__}")
