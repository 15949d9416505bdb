"""How mxm_dagster starts the child interpreters that hold its SQLMesh side (ADR 6, ADR 9)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def child_command(module: str, *args: str) -> list[str]:
    """`python -m module args...` with this interpreter, so the child has the same packages."""
    return [sys.executable, "-m", module, *args]


def child_env() -> dict[str, str]:
    """This process's environment, with mxm_dagster importable however the parent found it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_PARENT, env.get("PYTHONPATH")]))
    return env
