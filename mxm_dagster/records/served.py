"""What an environment serves, as SQLMesh's state records it: the reply of the SQLMesh child the
observing sensor starts (`mxm_dagster.child.observe`), for runs made outside Dagster (ADR 15)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

#: The line of the child's stdout that holds its reply.
SERVED_REPLY_PREFIX = "MXM_SERVED "


@dataclass(frozen=True)
class ServedModel:
    """One model the environment serves: where its data is and its data version."""

    model: str
    data_version: str
    snapshot_version: str = ""
    fingerprint: str = ""
    physical_table: str = ""
    view: str = ""
    #: every interval SQLMesh recorded for the served table, [start, end) epoch ms
    intervals: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class ServedState:
    """The environment's models; `busy` instead says why state was not read (a run holds the
    project), `error` that reading failed."""

    environment: str
    models: list[ServedModel] = field(default_factory=list)
    busy: str | None = None
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServedState:
        raw: dict[str, Any] = json.loads(text)
        models = [
            ServedModel(**{**m, "intervals": [tuple(i) for i in m.get("intervals", [])]})
            for m in raw.pop("models", [])
        ]
        return cls(models=models, **raw)
