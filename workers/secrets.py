"""Secrets from the environment or from a mounted file (a Kubernetes Secret volume): NAME, else the file
NAME_FILE points at. Values are returned, never logged or written anywhere by us."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping


class SecretFileError(OSError):
    """NAME_FILE is set but unreadable; the message names the path, never a value."""


def read_secret(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value:
        return value.strip()
    path = env.get(f"{name}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretFileError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
