"""A SQLMesh model selection (`select` / `exclude` in SQLMesh's selection syntax) and its answer.

Resolving the syntax needs SQLMesh, which Dagster processes never import (ADR 8): the child that
loads the project resolves it with SQLMesh's own selector and writes the selected model names to
a cache file next to the spec, keyed by the project's fingerprint and the selection.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mxm_dagster.common.files import write_atomically


@dataclass(frozen=True)
class ModelSelection:
    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, select: str | Iterable[str] | None, exclude: str | Iterable[str] | None
    ) -> ModelSelection | None:
        """None when neither is given: every model, no child to ask."""
        chosen, left_out = _strings(select), _strings(exclude)
        return cls(chosen, left_out) if chosen or left_out else None

    @property
    def key(self) -> str:
        text = json.dumps([self.select, self.exclude])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps({"select": self.select, "exclude": self.exclude})

    @classmethod
    def from_json(cls, text: str) -> ModelSelection:
        raw = json.loads(text)
        return cls(tuple(raw.get("select", ())), tuple(raw.get("exclude", ())))

    def write(self, path: Path, names: Iterable[str]) -> None:
        write_atomically(path, json.dumps(sorted(names)))

    @staticmethod
    def read(path: Path) -> frozenset[str] | None:
        try:
            return frozenset(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _strings(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(s.strip() for s in items if s and s.strip())
