"""Old public names that still import, warning their importer, as the same object."""

from __future__ import annotations

import warnings


def warn_renamed(module: str, old: str, new: str, stacklevel: int) -> None:
    """Warn the code that reached `module.old` (`stacklevel` frames up from the caller) to use
    `new`, the same object (for a class: not a subclass, so Dagster shows only the new name)."""
    warnings.warn(
        f"{module}.{old} is deprecated: use {new}, the same object under its current name",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )
