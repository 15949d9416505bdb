"""Smoke test of the benchmark harness at a tiny N, so `make bench` cannot rot unnoticed.

It checks that the generator writes a project raw SQLMesh can plan, and that the harness times every
side of the full-materialization scenario (raw SQLMesh, mxm_dagster, Dagster's floor) and reports
the ratios; the same for a deployed system, for a wide project on PostgreSQL, and for the UI's
GraphQL queries against real webservers. The Dagster side is not skipped when it fails: a benchmark
that only measures one side is broken. Nothing here asserts a timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `benchmarks` is not installed; `pytest` alone may miss it
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.generate_project import (  # noqa: E402
    AUDITS,
    DATABASE_FILE,
    FLOOR_AUDITS_ENV,
    FLOOR_MODELS_ENV,
    generate,
    plan_models,
)
from benchmarks.report import format_table  # noqa: E402
from tests.integration.test_postgres import PostgresServer, postgres_server  # noqa: E402, F401 (fixture)

BIN = Path(sys.executable).parent
N = 5

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(120)]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MXM_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def test_generator_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    generate(a, N)
    generate(b, N)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)
    assert len(list((a / "models").rglob("*.sql"))) == N


def test_generated_project_plans_with_raw_sqlmesh(tmp_path: Path) -> None:
    project = tmp_path / "project"
    generate(project, N)
    proc = subprocess.run(
        [str(BIN / "sqlmesh"), "plan", "--auto-apply", "--no-prompts"],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    import duckdb

    con = duckdb.connect(str(project / DATABASE_FILE), read_only=True)
    try:
        for spec in plan_models(N):
            schema, name = spec.name.split(".")
            count = con.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()
            assert count is not None and count[0] > 0, spec.name
    finally:
        con.close()


def _bench(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 110
) -> tuple[dict, str]:
    """`python -m benchmarks.run --quick --repeats 1 ARGS`: its JSON report and its output."""
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--repeats", "1", *args]
        + ["--out", str(out), "--workdir", str(tmp_path / "work")],
        cwd=REPO_ROOT,
        env={**_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.exists(), proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["failures"] == [], proc.stdout[-3000:]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return report, proc.stdout


def _timed(side: dict) -> bool:
    return bool(side["median_s"] and side["median_s"] > 0 and not side["failures"])


def test_harness_times_both_sides(tmp_path: Path) -> None:
    report, _ = _bench(tmp_path, "--scenarios", "full", "--sizes", str(N))
    (full,) = [r for r in report["results"] if r["scenario"] == "full"]
    assert full["n_models"] == N
    raw, dagster = full["sides"]["raw"], full["sides"]["dagster"]
    assert raw["median_s"] and raw["median_s"] > 0, raw["failures"]
    assert dagster["median_s"] and dagster["median_s"] > 0, dagster["failures"]
    assert full["ratio"] and full["ratio"] > 0
    # Dagster's floor for the same graph (no SQLMesh) ran every step too.
    floor = full["sides"]["floor"]
    assert floor["median_s"] and floor["median_s"] > 0, floor["failures"]
    assert full["floor_ratio"] and full["ratio_to_floor"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_deployed_and_graphql_scenarios(tmp_path: Path) -> None:
    """A deployed system's full build (every side built every model: the harness counts the
    views and the floor's steps), and the UI's queries answered by real webservers for both
    code locations with every asset of the graph and the asked-for asset's page."""
    report, output = _bench(
        tmp_path,
        "--scenarios",
        "deployed,graphql",
        "--sizes",
        str(N),
        "--graphql-n",
        str(N),
        timeout=880,
    )
    deployed, graphql = report["results"]
    assert deployed["scenario"] == "deployed" and deployed["n_models"] == N
    sides = deployed["sides"]
    assert all(_timed(sides[side]) for side in ("raw", "dagster", "floor")), sides
    assert deployed["ratio_to_floor"] and deployed["best_ratio_to_floor"]
    assert deployed["worst_ratio_to_floor"] >= deployed["best_ratio_to_floor"] > 0
    for side in ("dagster", "floor"):
        phases = sides[side]["median_phases"]
        assert phases["median_step_ms"] > 0 and phases["run_worker_peak_mb"] > 0, phases
        assert phases["steps"] == N

    assert graphql["scenario"] == "graphql" and graphql["n_models"] == N
    for name in ("dagster_graph", "dagster_asset", "floor_graph", "floor_asset"):
        assert _timed(graphql["sides"][name]), graphql["sides"][name]
    assert graphql["ratio_graph"] and graphql["ratio_asset"]
    phases = graphql["sides"]["dagster_graph"]["median_phases"]
    assert phases["code_server_rss_mb"] > 0 and phases["webserver_rss_mb"] > 0

    for row in ("deployed ", "graphql: asset graph", "graphql: asset page", "graphql: memory"):
        assert row in output
    assert "median step (ms): deployed" in output


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_postgres_wide_scenario(tmp_path: Path, postgres_server: PostgresServer) -> None:  # noqa: F811
    """A wide project on the PostgreSQL warehouse: every side built every model in a database of
    its own (counted there by the harness), the steps' finishing times were read from the event
    log, and no database is left behind."""
    server_env = {
        "BENCH_PG_HOST": postgres_server.host,
        "BENCH_PG_PORT": str(postgres_server.port),
        "BENCH_PG_USER": postgres_server.user,
        "BENCH_PG_PASSWORD": postgres_server.password,
    }
    before = postgres_server.query("postgres", "SELECT count(*) FROM pg_database")
    report, output = _bench(
        tmp_path,
        "--scenarios",
        "postgres",
        "--wide",
        "3",
        "--wide-seconds",
        "0.2",
        "--concurrency",
        "4",
        env=server_env,
        timeout=880,
    )
    (wide,) = report["results"]
    assert (wide["scenario"], wide["n_models"], wide["concurrent_tasks"]) == ("postgres", 3, 4)
    assert all(_timed(wide["sides"][side]) for side in ("raw", "dagster", "floor")), wide
    assert wide["ratio"] and wide["ratio_to_floor"]
    phases = wide["sides"]["dagster"]["median_phases"]
    assert 0 < phases["first_step_done_after_start_s"] <= phases["last_step_done_after_start_s"]
    assert "postgres, concurrent_tasks 4: steps done" in output
    assert postgres_server.query("postgres", "SELECT count(*) FROM pg_database") == before


def test_audit_heavy_project_plans_and_every_audit_passes_in_raw_sqlmesh(tmp_path: Path) -> None:
    """`--audits 10`: both sides must give the same answers, so every audit passes on the
    generated data, including those that are not blocking and the one reading the parent."""
    project = tmp_path / "project"
    specs = generate(project, N, audits=len(AUDITS))
    assert "forall_non_blocking" in (project / "models" / "bench_core" / "m_00002.sql").read_text()
    for command in (["plan", "--auto-apply", "--no-prompts"], ["audit"]):
        proc = subprocess.run(
            [str(BIN / "sqlmesh"), *command],
            cwd=project,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASS") == 1 + (len(specs) - 1) * len(AUDITS), proc.stdout
    assert "FAIL" not in proc.stdout
    with pytest.raises(ValueError):
        generate(tmp_path / "too_many", N, audits=len(AUDITS) + 1)


def test_the_floor_has_one_check_per_audit() -> None:
    code = (
        "from benchmarks.floor_definitions import defs; "
        "print(len(defs.resolve_asset_graph().asset_check_keys))"
    )
    env = {**_env(), FLOOR_MODELS_ENV: str(N), FLOOR_AUDITS_ENV: "10"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) == N * 10


def test_the_unchanged_scenario_has_its_rows_in_the_table() -> None:
    side = {"median_s": 2.0, "peak_rss_mb": 100.0, "median_phases": {"median_step_ms": 80.0}}
    result = {
        "scenario": "unchanged",
        "n_models": N,
        "audits": 10,
        "sides": {"raw": side, "dagster": side, "dagster_audit": side, "floor": side},
        "ratio": 1.0,
        "ratio_audit": 1.0,
        "ratio_audit_to_floor": 1.0,
        "target": 1.3,
    }
    table = format_table([result])
    assert "unchanged, 10 audits/model, default" in table
    assert "audit_unchanged" in table and "median step 80 ms" in table
