"""Dagster-legal names for SQLMesh identifiers."""

from __future__ import annotations

import hashlib
import re

_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_]")


def safe_name(text: str) -> str:
    """A Dagster-legal name for any SQLMesh identifier (quotes, hyphens, spaces, dots)."""
    cleaned = _INVALID_NAME_CHARS.sub("_", text.strip('"')).strip("_")
    return cleaned or "_" + hashlib.sha1(text.encode()).hexdigest()[:8]
