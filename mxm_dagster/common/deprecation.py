"""Old public names that still import, warning their importer, as the same object."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any


def warn_renamed(module: str, old: str, new: str, stacklevel: int) -> None:
    """Warn the code that reached `module.old` (`stacklevel` frames up from the caller) to use
    `new`, the same object (for a class: not a subclass, so Dagster shows only the new name)."""
    warnings.warn(
        f"{module}.{old} is deprecated: use {new}, the same object under its current name",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


def old_names(
    module: str, renamed: Mapping[str, str], names: Mapping[str, Any]
) -> Callable[[str], Any]:
    """A module's `__getattr__` serving each old name of `renamed` (old -> new) as the object its
    new name has in `names` (the module's globals), warning at every access."""

    def __getattr__(name: str) -> Any:
        if name not in renamed:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warn_renamed(module, name, renamed[name], stacklevel=2)
        return names[renamed[name]]

    return __getattr__
