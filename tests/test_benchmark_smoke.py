"""Smoke test of the benchmark harness at a tiny N, so `make bench` cannot rot unnoticed.

It checks that the generator writes a project raw SQLMesh can plan, and that the harness times every
side of the full-materialization scenario (raw SQLMesh, mxm_dagster, Dagster's floor) and reports
the ratios. The Dagster side is not skipped when it fails: a benchmark that only measures one side
is broken.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `benchmarks` is not installed; `pytest` alone may miss it
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.generate_project import DATABASE_FILE, generate, plan_models  # noqa: E402

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


def test_harness_times_both_sides(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--scenarios",
            "full",
            "--sizes",
            str(N),
            "--repeats",
            "1",
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert out.exists(), proc.stdout + proc.stderr
    report = json.loads(out.read_text())
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
    assert report["failures"] == []
    assert proc.returncode == 0, proc.stdout + proc.stderr
