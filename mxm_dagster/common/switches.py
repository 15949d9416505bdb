"""On/off switches read from the environment (MXM_SQLMESH_PARTITIONS, _OBSERVE, _FRESHNESS)."""

from __future__ import annotations

import os


def switch_from_env(variable: str) -> bool:
    """`variable` as a switch: `on` or `off` (the default when unset or blank), in any case."""
    raw = os.environ.get(variable, "").strip().lower() or "off"
    if raw not in ("on", "off"):
        raise ValueError(f"{variable} must be 'on' or 'off', not {os.environ[variable]!r}")
    return raw == "on"
