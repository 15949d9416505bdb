"""Generate a synthetic SQLMesh project of N models for benchmarks.

The project is one SEED model plus N-1 FULL models spread over a few schemas. Every FULL model
selects from one or two earlier models (so the graph is a DAG with long chains and some fan-in) and
carries one builtin audit, so audit handling is part of what is measured. ``audits=K`` (up to
``len(AUDITS)``) gives every FULL model K audits instead, for audit-heavy projects: builtin ones,
blocking and not, and one that reads another model (the model's first parent).
Output is a pure function of ``(n_models, seed, audits)``: two generated copies are
byte-identical, which is what lets a benchmark compare raw SQLMesh and Dagster on "the same"
project.

``generate_wide`` writes another shape: N independent models of about ``seconds`` each (a
``pg_sleep``) on a PostgreSQL warehouse with ``concurrent_tasks`` of SQLMesh's choosing, to see
whether SQLMesh's parallelism survives the integration.

CLI: ``python -m benchmarks.generate_project DEST N [--seed S] [--audits K]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
from dataclasses import dataclass
from pathlib import Path

#: Schemas the FULL models are spread over, in layer order (earlier models land in earlier layers).
SCHEMAS: tuple[str, ...] = ("bench_staging", "bench_core", "bench_marts", "bench_reporting")
#: Schema and name of the seed model every chain starts from.
SEED_MODEL = "bench_raw.seed_data"
#: File name of the DuckDB warehouse, relative to the project directory (and the process cwd).
DATABASE_FILE = "bench.duckdb"
#: Rows in the seed CSV: small, so the benchmark measures orchestration, not DuckDB.
SEED_ROWS = 50
#: How far back the first parent of a model may be; keeps chains deep rather than bushy.
RECENT_WINDOW = 20
#: The environment variable that tells `benchmarks.floor_definitions` how many models to mirror.
FLOOR_MODELS_ENV = "BENCH_FLOOR_MODELS"
#: ... and how many audits (checks) each FULL model carries.
FLOOR_AUDITS_ENV = "BENCH_FLOOR_AUDITS"
#: ... and which graph: unset for `plan_models`, `wide` for `plan_wide_models`.
FLOOR_SHAPE_ENV = "BENCH_FLOOR_SHAPE"
#: Schema of the wide project's models.
WIDE_SCHEMA = "bench_wide"
#: The environment variable naming the PostgreSQL database a wide project's gateway writes to
#: (warehouse and SQLMesh's state), so each run can get a fresh one.
PG_DATABASE_ENV = "BENCH_PG_DATABASE"
#: The audits of a FULL model, in order: K audits are the first K. Every one passes on the
#: generated data (50 rows, unique ids, positive amounts, groups g0-g4), so both sides give the
#: same answers; `_non_blocking` ones are warnings, not failures. `{parent}` is the model's first
#: parent: an audit reading a model it does not read itself would read that model's view, which
#: a fresh plan creates only when it promotes, so SQLMesh fails it (DESIGN.md, "Audits that
#: error"); a parent is read from the table SQLMesh maps it to.
AUDITS: tuple[str, ...] = (
    "not_null(columns := (id, amount))",
    "unique_values(columns := (id))",
    "forall_non_blocking(criteria := (id IN (SELECT id FROM {parent})))",  # reads another model
    "accepted_range_non_blocking(column := amount, min_v := 0)",
    "number_of_rows(threshold := 10)",
    "accepted_values(column := grp, is_in := ('g0', 'g1', 'g2', 'g3', 'g4'))",
    "not_empty_string_non_blocking(column := grp)",
    "at_least_one(column := id)",
    "unique_combination_of_columns(columns := (id, grp))",
    "not_constant_non_blocking(column := id)",
)

CONFIG_YAML = f"""\
gateways:
  local:
    connection:
      type: duckdb
      database: {DATABASE_FILE}
default_gateway: local
model_defaults:
  dialect: duckdb
"""


@dataclass(frozen=True)
class ModelSpec:
    """One generated model: its fully qualified name and the models it reads."""

    name: str
    parents: tuple[str, ...]

    @property
    def schema(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def table(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def asset_key_path(self) -> str:
        """The Dagster CLI selection string for this model (asset key ``[schema, name]``)."""
        return f"{self.schema}/{self.table}"


def plan_models(n_models: int, seed: int = 0) -> list[ModelSpec]:
    """Decide names and dependencies of all ``n_models`` models (seed model first).

    Kept separate from writing files so the benchmark can pick a model (e.g. a leaf) without
    re-parsing SQL.
    """
    if n_models < 1:
        raise ValueError("n_models must be at least 1 (the seed model)")
    rng = random.Random(seed)
    specs = [ModelSpec(SEED_MODEL, ())]
    n_full = n_models - 1
    for i in range(1, n_models):
        schema = SCHEMAS[min((i - 1) * len(SCHEMAS) // max(n_full, 1), len(SCHEMAS) - 1)]
        name = f"{schema}.m_{i:05d}"
        earlier = [s.name for s in specs]
        first = rng.choice(earlier[-RECENT_WINDOW:])
        parents = [first]
        if len(earlier) >= 2 and rng.random() < 0.5:
            second = rng.choice(earlier)
            if second != first:
                parents.append(second)
        specs.append(ModelSpec(name, tuple(parents)))
    return specs


def plan_wide_models(n_models: int) -> list[ModelSpec]:
    """``n_models`` models that read nothing: SQLMesh may evaluate all of them at once."""
    return [ModelSpec(f"{WIDE_SCHEMA}.w_{i:05d}", ()) for i in range(1, n_models + 1)]


def leaf_models(specs: list[ModelSpec]) -> list[ModelSpec]:
    """Models nothing else reads: running one of them touches no downstream model."""
    read = {p for s in specs for p in s.parents}
    return [s for s in specs if s.name not in read]


def _seed_csv(seed: int) -> str:
    rng = random.Random(f"seed-csv-{seed}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "grp", "amount", "ds"])
    for i in range(SEED_ROWS):
        writer.writerow(
            [i, f"g{i % 5}", f"{rng.uniform(0, 1000):.2f}", f"2024-01-{i % 28 + 1:02d}"]
        )
    return buf.getvalue()


def _seed_sql() -> str:
    return f"""\
MODEL (
  name {SEED_MODEL},
  kind SEED (path '../../seeds/seed_data.csv'),
  columns (id INT, grp TEXT, amount DOUBLE, ds DATE),
  audits (not_null(columns := (id)))
);
"""


def _full_sql(spec: ModelSpec, index: int, audits: int = 1) -> str:
    header = f"""\
MODEL (
  name {spec.name},
  kind FULL,
  audits ({", ".join(a.format(parent=spec.parents[0]) for a in AUDITS[:audits])})
);

"""
    if len(spec.parents) == 1:
        body = (
            f"SELECT id, grp, amount * 1.01 + {index % 97} AS amount, ds\nFROM {spec.parents[0]}\n"
        )
    else:
        a, b = spec.parents
        body = (
            "SELECT a.id, a.grp, a.amount + b.amount AS amount, a.ds\n"
            f"FROM {a} AS a\n"
            f"JOIN {b} AS b ON a.id = b.id\n"
        )
    return header + body


def generate(dest: Path, n_models: int, seed: int = 0, audits: int = 1) -> list[ModelSpec]:
    """Write a SQLMesh project of ``n_models`` models to ``dest`` and return the model specs;
    every FULL model carries the first ``audits`` of ``AUDITS``.

    ``dest`` must not exist or be empty. The DuckDB ``database:`` path in ``config.yaml`` is
    relative, so SQLMesh must run with ``cwd=dest`` (relative paths resolve against the cwd).
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} exists and is not empty")
    if not 1 <= audits <= len(AUDITS):
        raise ValueError(f"audits must be between 1 and {len(AUDITS)}")
    specs = plan_models(n_models, seed)
    (dest / "seeds").mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(CONFIG_YAML)
    (dest / "seeds" / "seed_data.csv").write_text(_seed_csv(seed))
    for index, spec in enumerate(specs):
        model_dir = dest / "models" / spec.schema
        model_dir.mkdir(parents=True, exist_ok=True)
        sql = _seed_sql() if index == 0 else _full_sql(spec, index, audits)
        (model_dir / f"{spec.table}.sql").write_text(sql)
    return specs


def _wide_config(concurrent_tasks: int) -> str:
    return f"""\
gateways:
  postgres:
    connection:
      type: postgres
      host: "{{{{ env_var('BENCH_PG_HOST', '127.0.0.1') }}}}"
      port: "{{{{ env_var('BENCH_PG_PORT', '5432') }}}}"
      user: "{{{{ env_var('BENCH_PG_USER', 'postgres') }}}}"
      password: "{{{{ env_var('BENCH_PG_PASSWORD', '') }}}}"
      database: "{{{{ env_var('{PG_DATABASE_ENV}') }}}}"
      concurrent_tasks: {concurrent_tasks}
default_gateway: postgres
model_defaults:
  dialect: postgres
"""


def generate_wide(
    dest: Path, n_models: int, seconds: float, concurrent_tasks: int
) -> list[ModelSpec]:
    """Write ``n_models`` independent models of about ``seconds`` each (the server sleeping, so
    the time is the same however many run at once) with one audit each, on a PostgreSQL gateway
    whose database ``$BENCH_PG_DATABASE`` names, evaluated ``concurrent_tasks`` at a time."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} exists and is not empty")
    specs = plan_wide_models(n_models)
    model_dir = dest / "models" / WIDE_SCHEMA
    model_dir.mkdir(parents=True)
    (dest / "config.yaml").write_text(_wide_config(concurrent_tasks))
    for index, spec in enumerate(specs, start=1):
        (model_dir / f"{spec.table}.sql").write_text(
            f"MODEL (\n  name {spec.name},\n  kind FULL,\n"
            "  audits (not_null(columns := (id)))\n);\n\n"
            f"SELECT {index} AS id FROM (SELECT pg_sleep({seconds})) AS s\n"
        )
    return specs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="directory to create (must be absent or empty)")
    parser.add_argument("n_models", type=int, help="number of models, including the seed model")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--audits", type=int, default=1, help=f"audits per FULL model, 1-{len(AUDITS)} (default 1)"
    )
    args = parser.parse_args(argv)
    specs = generate(args.dest, args.n_models, args.seed, args.audits)
    print(f"wrote {len(specs)} models to {args.dest}")


if __name__ == "__main__":
    main()
