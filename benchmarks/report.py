"""The one table `python -m benchmarks.run` prints: a row per measurement, with raw
SQLMesh, mxm_dagster and Dagster's floor side by side and their ratios, then the median step
time of every Dagster side, one row set across scenarios and sizes.

Memory: for a `dagster asset materialize` side, "run worker" is the CLI process's own peak (the run
runs in it with the in-process executor) and "largest" the largest single process of the command
(the run worker or its SQLMesh child); for `load`, the code server's load process; for
`graphql`, the live webserver and its code server.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

HEADER = ("scenario", "N", "raw SQLMesh", "mxm_dagster", "ratio", "target", "Dagster alone (floor)")


def machine_info() -> dict[str, Any]:
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions = {}
    for pkg in ("dagster", "sqlmesh", "duckdb"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        # Other load on the machine skews every figure; record it so a noisy run is visible.
        "loadavg_1_5_15": list(os.getloadavg()),
        "cpus": os.cpu_count(),
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "versions": versions,
    }


def _fmt(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "—"
    return f"{value:.2f}{unit}"


def _mb(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} MB"


def _side(sides: dict[str, Any], name: str, rss: str = "") -> str:
    """A side's median (and, labelled ``rss``, its peak RSS), or FAILED when it has failures and
    no good sample."""
    side = sides.get(name, {})
    if side.get("median_s") is None:
        return "FAILED" if side.get("failures") else "—"
    text = _fmt(side["median_s"])
    if rss:
        text += f", {rss} {_mb(side['peak_rss_mb'])}"
    return text


def _run_worker(sides: dict[str, Any], name: str) -> str:
    """A `dagster asset materialize` side: its median, the run worker's peak and the largest
    process's."""
    side = sides.get(name, {})
    text = _side(sides, name)
    worker = side.get("median_phases", {}).get("run_worker_peak_mb")
    if side.get("median_s") is not None:
        text += f", run worker {_mb(worker)} (largest {_mb(side['peak_rss_mb'])})"
    return text


def _floor(r: dict[str, Any]) -> str:
    sides = r.get("sides", {})
    if "floor" not in sides:
        return ""
    text = (
        f"{_run_worker(sides, 'floor')} = {_fmt(r.get('floor_ratio'), 'x')} raw; "
        f"mxm {_fmt(r.get('ratio_to_floor'), 'x')} of it"
    )
    if "best_ratio_to_floor" in r:
        text += (
            f" (best {_fmt(r['best_ratio_to_floor'], 'x')}, "
            f"worst {_fmt(r['worst_ratio_to_floor'], 'x')})"
        )
    return text


def _build_rows(r: dict[str, Any], n: str) -> list[tuple[str, ...]]:
    """full, deployed, one, postgres: a side-by-side build."""
    sides, name = r.get("sides", {}), r["scenario"]
    target = {
        "full": f"≤ {r.get('target')}x",
        "one": f"≤ {r.get('target')}x",
        "deployed": f"best ≤ {r.get('target')}x of floor, none > 1.3x",
        "postgres": "mxm - raw ≤ floor",
    }[name]
    label = name
    if name == "postgres":
        label = f"postgres, concurrent_tasks {r['concurrent_tasks']}"
    ratio = _fmt(r.get("ratio"), "x")
    if r.get("ours_minus_raw_s") is not None:
        ratio += f" (mxm - raw {_fmt(r['ours_minus_raw_s'])})"
    raw, ours = _side(sides, "raw", "largest"), _run_worker(sides, "dagster")
    rows = [(label, n, raw, ours, ratio, target, _floor(r))]
    if name == "postgres":
        rows.append(
            (
                f"{label}: steps done",
                n,
                "",
                _step_spread(sides, "dagster"),
                "",
                "spread over the run",
                _step_spread(sides, "floor"),
            )
        )
    return rows


def _step_spread(sides: dict[str, Any], name: str) -> str:
    """When a side's first and last step finished after RUN_START (from its event log)."""
    phases = sides.get(name, {}).get("median_phases", {})
    first = phases.get("first_step_done_after_start_s")
    last = phases.get("last_step_done_after_start_s")
    if first is None or last is None:
        return "—"
    return f"first {first:.1f} s, last {last:.1f} s after RUN_START"


def _unchanged_rows(r: dict[str, Any], n: str) -> list[tuple[str, ...]]:
    sides = r.get("sides", {})
    label = f"unchanged, {r.get('audits')} audits/model"
    raw = "plan + audit " + _side(sides, "raw", "largest")
    target = f"≤ {r.get('target')}x"
    return [
        (
            label + ", default",
            n,
            raw,
            f"{_run_worker(sides, 'dagster')} ({_steps(sides, 'dagster')})",
            _fmt(r.get("ratio"), "x"),
            target,
            f"{_run_worker(sides, 'floor')} ({_steps(sides, 'floor')})",
        ),
        (
            label + ", audit_unchanged",
            n,
            raw,
            f"{_run_worker(sides, 'dagster_audit')} ({_steps(sides, 'dagster_audit')})",
            _fmt(r.get("ratio_audit"), "x"),
            target,
            f"mxm {_fmt(r.get('ratio_audit_to_floor'), 'x')} of the floor",
        ),
    ]


def _load_rows(r: dict[str, Any], n: str) -> list[tuple[str, ...]]:
    sides = r.get("sides", {})
    floor = {
        "cold": f"Context + Dagster alone = {_fmt(r.get('floor_ratio_cold'), 'x')}",
        "warm": f"Dagster alone {_side(sides, 'floor', 'code server')}",
    }
    rows: list[tuple[str, ...]] = []
    for t in ("cold", "warm"):
        rows.append(
            (
                f"load {t}",
                n,
                "Context " + _side(sides, f"sqlmesh_{t}", "peak"),
                _side(sides, f"dagster_{t}", "code server peak"),
                f"{_fmt(r.get(f'ratio_{t}'), 'x')} (memory {_fmt(r.get(f'rss_ratio_{t}'), 'x')})",
                f"≤ {r['target']}x",
                floor[t] if "floor" in sides else "",
            )
        )
        s_ph = sides.get(f"sqlmesh_{t}", {}).get("median_phases", {})
        d_ph = sides.get(f"dagster_{t}", {}).get("median_phases", {})
        rows.append(
            (
                f"load {t}, after imports",
                n,
                "Context " + _fmt(s_ph.get("load_s")),
                _fmt(d_ph.get("load_s")),
                _fmt(r.get(f"ratio_{t}_excluding_imports"), "x"),
                "",
                "",
            )
        )
    return rows


def _multiprocess_rows(r: dict[str, Any], n: str) -> list[tuple[str, ...]]:
    sides = r.get("sides", {})
    ours = f"in-process {_side(sides, 'dagster')}, multiprocess {_side(sides, 'dagster_mp')}"
    ratio = f"{_fmt(r.get('ratio'), 'x')} of in-process"
    return [("multiprocess executor", n, _side(sides, "raw"), ours, ratio, "", "")]


def _graphql_rows(r: dict[str, Any], n: str) -> list[tuple[str, ...]]:
    sides = r.get("sides", {})
    target = f"≤ {r.get('target')}x of floor"
    rows: list[tuple[str, ...]] = [
        (
            f"graphql: {title}",
            n,
            "",
            _side(sides, f"dagster_{query}"),
            f"{_fmt(r.get(f'ratio_{query}'), 'x')} of floor",
            target,
            _side(sides, f"floor_{query}"),
        )
        for query, title in (("graph", "asset graph"), ("asset", "asset page"))
    ]

    def memory(side: str) -> str:
        phases = sides.get(f"{side}_graph", {}).get("median_phases", {})
        return (
            f"code server {_mb(phases.get('code_server_rss_mb'))}, "
            f"webserver {_mb(phases.get('webserver_rss_mb'))}, "
            f"loaded in {_fmt(phases.get('location_loaded_s'))}"
        )

    ours = sides.get("dagster_graph", {}).get("median_phases", {}).get("code_server_rss_mb")
    floor = sides.get("floor_graph", {}).get("median_phases", {}).get("code_server_rss_mb")
    ratio = _fmt(ours / floor if ours and floor else None, "x")
    rows.append(
        (
            "graphql: memory",
            n,
            "",
            memory("dagster"),
            f"code server {ratio} of floor",
            "≤ 1.5x",
            memory("floor"),
        )
    )
    return rows


_ROWS = {
    "full": _build_rows,
    "deployed": _build_rows,
    "one": _build_rows,
    "postgres": _build_rows,
    "unchanged": _unchanged_rows,
    "load": _load_rows,
    "multiprocess": _multiprocess_rows,
    "graphql": _graphql_rows,
}

#: The Dagster sides whose runs' step times are reported, per scenario: (side, label).
_STEP_SIDES: dict[str, list[tuple[str, str]]] = {
    "full": [("dagster", "")],
    "deployed": [("dagster", "")],
    "one": [("dagster", "")],
    "postgres": [("dagster", "")],
    "unchanged": [("dagster", "default"), ("dagster_audit", "audit_unchanged")],
    "multiprocess": [("dagster", "in-process"), ("dagster_mp", "multiprocess")],
}


def _steps(sides: dict[str, Any], name: str) -> str:
    """A Dagster side's median step time (and 90th percentile), from its runs' event logs."""
    phases = sides.get(name, {}).get("median_phases", {})
    step, p90 = phases.get("median_step_ms"), phases.get("p90_step_ms")
    if step is None:
        return "median step —"
    return f"median step {step:.0f} ms" + (f" (p90 {p90:.0f})" if p90 is not None else "")


def _step_rows(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """``median step (ms)``: every Dagster side of every scenario, grouped by scenario then N,
    beside the floor's where the scenario has one."""
    rows: list[tuple[str, ...]] = []
    ordered = sorted(
        (r for r in results if r["scenario"] in _STEP_SIDES),
        key=lambda r: (list(_STEP_SIDES).index(r["scenario"]), r["n_models"]),
    )
    for r in ordered:
        sides = r.get("sides", {})
        name = r["scenario"]
        if name == "postgres":
            name += f", concurrent_tasks {r['concurrent_tasks']}"
        floor_ms = sides.get("floor", {}).get("median_phases", {}).get("median_step_ms")
        for side, label in _STEP_SIDES[r["scenario"]]:
            ours_ms = sides.get(side, {}).get("median_phases", {}).get("median_step_ms")
            ratio = f"{_fmt(ours_ms / floor_ms, 'x')} of floor" if ours_ms and floor_ms else ""
            rows.append(
                (
                    f"median step (ms): {name}" + (f", {label}" if label else ""),
                    str(r["n_models"]),
                    "",
                    _steps(sides, side),
                    ratio,
                    "",
                    _steps(sides, "floor") if "floor" in sides else "",
                )
            )
    return rows


def table_rows(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """The header, every scenario's rows in the order run, then the median step rows."""
    rows: list[tuple[str, ...]] = [HEADER]
    for r in results:
        if "sides" in r:
            rows.extend(_ROWS[r["scenario"]](r, str(r["n_models"])))
    return rows + _step_rows(results)


def format_table(results: list[dict[str, Any]], markdown: bool = False) -> str:
    rows = table_rows(results)
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|" + "---|" * len(rows[0]))
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(report: dict[str, Any]) -> str:
    """The results section of docs/benchmarks.md for one JSON report."""
    m = report["machine"]
    v = m["versions"]
    return (
        f"Run {report['started']} ({report['duration_s'] / 60:.0f} min): "
        f"{m['cpus']} cores, {m['memory_gib']} GiB, Python {m['python']}, dagster {v['dagster']}, "
        f"sqlmesh {v['sqlmesh']}, duckdb {v['duckdb']}; load average at start "
        f"{m['loadavg_1_5_15'][0]:.1f}. Medians of {report['results'][0]['repeats']} "
        "(seconds, peak RSS).\n\n" + format_table(report["results"], markdown=True)
    )
