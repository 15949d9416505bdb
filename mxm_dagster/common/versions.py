"""The SQLMesh and Dagster releases this code location is tested with, checked when it loads.

SQLMesh's console hooks, scheduler and errors are internal APIs that change between minor
releases (ADR 16). A version outside these ranges may still import and run, and then report
a run wrongly; the load stops instead, naming the range, so an upgrade is a decision, not an
accident. Read from the installed distributions' metadata: neither package is imported here.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from importlib import metadata

from mxm_dagster.common.errors import MxmDagsterError


class UnsupportedVersionError(MxmDagsterError):
    """An installed SQLMesh or Dagster release is outside the range mxm_dagster is tested with."""


@dataclass(frozen=True)
class SupportedRange:
    """Minor releases `oldest` up to, not including, `first_unsupported` (as in pyproject.toml)."""

    package: str
    oldest: tuple[int, int]
    first_unsupported: tuple[int, int]

    def __str__(self) -> str:
        return f"{self.package}>={_dotted(self.oldest)},<{_dotted(self.first_unsupported)}"

    def holds(self, version: str) -> bool:
        return self.oldest <= _minor(version) < self.first_unsupported


#: Keep in step with pyproject.toml's dependencies, the README and docs/adr/0016.
SQLMESH = SupportedRange("sqlmesh", (0, 233), (0, 237))
DAGSTER = SupportedRange("dagster", (1, 12), (1, 14))


def _dotted(minor: tuple[int, int]) -> str:
    return ".".join(map(str, minor))


def _minor(version: str) -> tuple[int, int]:
    """`0.236.4` -> (0, 236); a pre-release or local suffix does not change the minor."""
    major, _, rest = version.partition(".")
    minor = "".join(itertools.takewhile(str.isdigit, rest))
    return int(major or 0), int(minor or 0)


def check(supported: SupportedRange) -> str:
    """The installed version of `supported.package`; raises when it is outside the range."""
    try:
        installed = metadata.version(supported.package)
    except metadata.PackageNotFoundError:
        raise UnsupportedVersionError(
            f"{supported.package} is not installed; mxm_dagster needs {supported}"
        ) from None
    if not supported.holds(installed):
        raise UnsupportedVersionError(
            f"{supported.package} {installed} is installed; mxm_dagster supports {supported} "
            f"(tested: {_dotted(supported.oldest)}.x to "
            f"{supported.first_unsupported[0]}.{supported.first_unsupported[1] - 1}.x). Install "
            f"a version in that range (pip install '{supported}'), or an mxm_dagster release "
            "that supports yours."
        )
    return installed


@functools.cache
def check_installed() -> None:
    """Both ranges, once per process: every Dagster load path (code location, builder,
    component) and every SQLMesh child calls it before it uses either package."""
    check(SQLMESH)
    check(DAGSTER)
