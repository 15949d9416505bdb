"""Plain, serialisable descriptions of SQLMesh models.

The loader and translator work on these records instead of SQLMesh objects so that a run worker can
rebuild the asset graph from a cached JSON file without parsing the SQLMesh project again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mxm_dagster.common.deprecation import old_names
from mxm_dagster.common.files import write_atomically


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    description: str | None = None


@dataclass(frozen=True)
class ColumnDep:
    """One upstream column a model's column reads: the upstream model's name and its column."""

    model: str
    column: str


@dataclass(frozen=True)
class ColumnLineageSpec:
    """One output column of a model and the upstream columns SQLMesh's lineage says it reads."""

    column: str
    deps: tuple[ColumnDep, ...] = ()

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ColumnLineageSpec:
        return cls(raw["column"], tuple(ColumnDep(**d) for d in raw.get("deps", ())))


@dataclass(frozen=True)
class AuditSpec:
    """One audit attached to a model; `check_name` is unique within the model.

    `skip` audits are declared but SQLMesh never runs them. A `standalone` audit is its own SQLMesh
    node (named `name`), reported on the model it queries; `reads` are the other models it queries.
    """

    name: str
    check_name: str
    blocking: bool
    args: dict[str, str] = field(default_factory=dict)
    skip: bool = False
    standalone: bool = False
    reads: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    """What Dagster needs to know about one SQLMesh model (or external table)."""

    name: str  # fully qualified, as SQLMesh names it: "catalog"."schema"."table"
    catalog: str | None
    schema: str
    table: str
    kind: str
    is_external: bool = False
    depends_on: tuple[str, ...] = ()
    description: str | None = None
    owner: str | None = None
    tags: tuple[str, ...] = ()
    columns: tuple[ColumnSpec, ...] = ()
    audits: tuple[AuditSpec, ...] = ()
    cron: str | None = None
    interval_unit: str | None = None
    start: str | None = None
    start_ms: int | None = None  # the start as SQLMesh resolves it (epoch ms, UTC); None if unset
    #: The model's `end` as written, and as SQLMesh resolves it: exclusive (an end date covers
    #: that whole day), epoch ms, UTC. SQLMesh fills no interval after it.
    end: str | None = None
    end_ms: int | None = None
    cron_tz: str | None = None  # the time zone of `cron` (IANA name); None: UTC
    time_column: str | None = None
    grain: tuple[str, ...] = ()
    data_hash: str | None = None
    file_path: str | None = None
    file_line: int | None = None  # where the model is defined in `file_path`, 1-based
    dialect: str | None = None
    column_lineage: tuple[ColumnLineageSpec, ...] = ()

    @property
    def is_model(self) -> bool:
        """A model SQLMesh evaluates (one asset step each), not an external table it only reads."""
        return not self.is_external

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelSpec:
        raw = dict(raw)
        raw["columns"] = tuple(ColumnSpec(**c) for c in raw.get("columns", ()))
        raw["audits"] = tuple(
            AuditSpec(**{**a, "reads": tuple(a.get("reads", ()))}) for a in raw.get("audits", ())
        )
        raw["column_lineage"] = tuple(
            ColumnLineageSpec.from_dict(c) for c in raw.get("column_lineage", ())
        )
        for key in ("depends_on", "tags", "grain"):
            raw[key] = tuple(raw.get(key, ()))
        return cls(**raw)


@dataclass(frozen=True)
class LoadedModels:
    """Every model of a project plus what is needed to talk about them (catalog, dialect)."""

    default_catalog: str | None
    dialect: str
    engine: str
    models: tuple[ModelSpec, ...]
    #: The gateway the project was loaded with and its DuckDB file, if any: what the Dagster
    #: processes need to know of the connection without loading SQLMesh's config.
    gateway: str = ""
    warehouse: str | None = None
    #: A relative `start` or `end` ('3 days ago') resolves against the clock: the moment (epoch
    #: ms) from which one of them would resolve into another interval of its model, so the cached
    #: spec no longer holds (see `SQLMeshProject.load_spec`). None: nothing in the spec depends
    #: on when it was made.
    valid_until: int | None = None

    def holds_at(self, now_ms: int) -> bool:
        """Whether every relative start and end still resolves as recorded at `now_ms`."""
        return self.valid_until is None or now_ms < self.valid_until

    def by_name(self) -> dict[str, ModelSpec]:
        return {m.name: m for m in self.models}

    def standalone_audits(self) -> dict[str, str]:
        """Standalone audit (its SQLMesh node name) -> the model whose check reports it."""
        return {
            audit.name: model.name
            for model in self.models
            for audit in model.audits
            if audit.standalone
        }

    def downstream(self, name: str) -> set[str]:
        """Every model that reads `name`, directly or through others."""
        children: dict[str, set[str]] = {}
        for model in self.models:
            for parent in model.depends_on:
                children.setdefault(parent, set()).add(model.name)
        found: set[str] = set()
        pending = [name]
        while pending:
            for child in children.get(pending.pop(), ()):
                if child not in found:
                    found.add(child)
                    pending.append(child)
        return found

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LoadedModels:
        raw = json.loads(text)
        models = tuple(ModelSpec.from_dict(m) for m in raw.pop("models"))
        return cls(models=models, **raw)

    def write(self, path: Path) -> None:
        write_atomically(path, self.to_json())  # two cold processes may both write


#: Names the classes had before, still importable (with a DeprecationWarning) by code written then.
__getattr__ = old_names(__name__, {"ProjectSpec": "LoadedModels"}, globals())
