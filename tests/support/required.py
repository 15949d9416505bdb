"""A test whose real setup this machine lacks (a PostgreSQL server, a browser, a read-only mount):
skipped with the reason on a developer's machine, failed in CI, where a skip would hide that the
test never ran."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def required(switch: str) -> bool:
    """CI (`CI` set to anything but false), or the test's own switch (`MXM_REQUIRE_...=1`)."""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return ci or os.environ.get(switch, "").strip() == "1"


def setup_missing(reason: str, switch: str) -> NoReturn:
    """Fail where the setup is required, else skip; either way the reason is printed."""
    if required(switch):
        pytest.fail(f"{reason} (required here: CI or {switch}=1)", pytrace=False)
    pytest.skip(reason)
