"""What every benchmark scenario shares: a timed subprocess (`Sample`), where copies and
instances go and how commands run (`Harness`), the sides' commands, and the summary of samples.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.generate_project import (
    DATABASE_FILE,
    FLOOR_MODELS_ENV,
    SCHEMAS,
    SEED_MODEL,
    generate,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "benchmarks" / "out"
BIN = Path(sys.executable).parent
DEFS_MODULE = "mxm_dagster.definitions"
FLOOR_MODULE = "benchmarks.floor_definitions"
#: Environment variables that would leak the caller's Dagster/mxm setup into a measurement.
_SCRUBBED_ENV = ("DAGSTER_HOME", "MXM_SQLMESH_PROJECT", "MXM_DAGSTER_EXECUTOR")


@dataclass
class Sample:
    """One timed subprocess."""

    side: str
    repeat: int
    wall_s: float
    maxrss_mb: float
    ok: bool
    log: str
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Harness:
    """Where the work goes and how commands run; one per benchmark invocation."""

    workdir: Path
    logdir: Path
    timeout_s: float
    #: ``--initialised-instance``: every "fresh" DAGSTER_HOME is a copy of an initialised one.
    use_initialised_instance: bool = False
    templates: dict[tuple[int, int], Path] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    _counter: int = 0

    def template(self, n_models: int, audits: int = 1) -> Path:
        """The pristine generated project for ``n_models`` (``audits`` per model); copies are
        made from it."""
        if (n_models, audits) not in self.templates:
            path = self.workdir / f"template_{n_models}_a{audits}"
            generate(path, n_models, audits=audits)
            self.templates[n_models, audits] = path
        return self.templates[n_models, audits]

    def fresh_copy(self, n_models: int, label: str, audits: int = 1) -> Path:
        self._counter += 1
        dest = self.workdir / f"{self._counter:03d}_{label}_n{n_models}"
        shutil.copytree(self.template(n_models, audits), dest)
        return dest

    def fresh_dagster_home(self, label: str, initialised: bool = False) -> Path:
        """A new DAGSTER_HOME: a copy of an initialised, run-less instance when the run asked for
        one (``--initialised-instance``) or the caller does (a deployed system), else empty."""
        self._counter += 1
        home = self.workdir / f"{self._counter:03d}_dagster_home_{label}"
        if initialised or self.use_initialised_instance:
            shutil.copytree(self.initialised_instance(), home)
        else:
            home.mkdir()
            (home / "dagster.yaml").write_text("")
        return home

    def initialised_instance(self) -> Path:
        """An empty Dagster instance whose storage exists, created once and then copied, so
        Dagster's one-time SQLite schema creation (~3 s here) is not timed."""
        template = self.workdir / "dagster_home_template"
        if template.exists():
            return template
        template.mkdir()
        (template / "dagster.yaml").write_text("")
        code = "from dagster import DagsterInstance; DagsterInstance.get().get_runs(limit=1)"
        subprocess.run(
            [sys.executable, "-c", code],
            env=self.env(dagster_home=template),
            check=True,
            capture_output=True,
            timeout=self.timeout_s,
        )
        return template

    def env(self, project: Path | None = None, dagster_home: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
        if project is not None:
            env["MXM_SQLMESH_PROJECT"] = str(project)
        if dagster_home is not None:
            env["DAGSTER_HOME"] = str(dagster_home)
        return env

    def run(
        self, label: str, cmd: list[str], cwd: Path, env: dict[str, str]
    ) -> tuple[dict[str, Any], str, Path]:
        """Run ``cmd`` under the measuring wrapper; return its measurement, output and log path."""
        self._counter += 1
        log = self.logdir / f"{self._counter:03d}_{label}.log"
        result_file = self.workdir / f"{self._counter:03d}_{label}.json"
        wrapper = [sys.executable, "-m", "benchmarks._child", "measure", str(result_file), "--"]
        # Own process group, so a timeout ends the measured command too, not only the wrapper.
        proc = subprocess.Popen(
            wrapper + cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            output += f"\nTIMEOUT after {self.timeout_s} s"
        log.write_text(f"$ (cd {cwd} && {' '.join(cmd)})\n{output}")
        if result_file.exists():
            measured = json.loads(result_file.read_text())
        else:
            measured = {"wall_s": float("nan"), "maxrss_mb": float("nan"), "returncode": -1}
        return measured, output, log

    def child(self, label: str, args: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
        """Run an untimed helper from ``benchmarks._child`` and return its JSON result."""
        cmd = [sys.executable, "-m", "benchmarks._child", *args]
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=self.timeout_s
        )
        result = parse_result(proc.stdout)
        if proc.returncode != 0 or result is None:
            raise RuntimeError(f"{label} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return result


def parse_result(output: str) -> dict[str, Any] | None:
    for line in reversed(output.splitlines()):
        if line.startswith("BENCH_RESULT "):
            return json.loads(line.removeprefix("BENCH_RESULT "))
    return None


def tail(text: str, lines: int = 4) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


_DAGSTER_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}) - dagster - \w+ - .* - "
    r"(RUN_START|RUN_SUCCESS|RUN_FAILURE|STEP_START|STEP_SUCCESS|STEP_FAILURE) - "
)


def dagster_phases(output: str, started_at: float, wall_s: float) -> dict[str, float]:
    """Split a ``dagster asset materialize`` wall time using its event log lines.

    Dagster prints timestamps to the second, so these are approximate (±1 s), but they show
    whether time goes to loading (before RUN_START), to SQLMesh (until the first step finishes,
    since steps wait for the shared SQLMesh execution) or to per-step bookkeeping.
    """
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    counts: dict[str, int] = {}
    for line in output.splitlines():
        match = _DAGSTER_LOG_LINE.match(line)
        if not match:
            continue
        stamp = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S %z").timestamp()
        event = match.group(2)
        first.setdefault(event, stamp)
        last[event] = stamp
        counts[event] = counts.get(event, 0) + 1
    if "RUN_START" not in first:
        return {}
    run_start = first["RUN_START"]
    run_end = last.get("RUN_SUCCESS", last.get("RUN_FAILURE", started_at + wall_s))
    phases = {
        "before_run_start_s": run_start - started_at,
        "run_s": run_end - run_start,
        "after_run_end_s": started_at + wall_s - run_end,
        "steps": float(counts.get("STEP_START", 0)),
    }
    if "STEP_SUCCESS" in first:
        phases["run_start_to_first_step_done_s"] = first["STEP_SUCCESS"] - run_start
        phases["first_step_done_to_run_end_s"] = run_end - first["STEP_SUCCESS"]
    return phases


def prod_views(project: Path) -> int:
    """Count the prod views of generated models, without keeping the warehouse open."""
    import duckdb

    db = project / DATABASE_FILE
    if not db.exists():
        return 0
    schemas = [*SCHEMAS, SEED_MODEL.split(".")[0]]
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema IN "
            f"({', '.join('?' for _ in schemas)})",
            schemas,
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


# --------------------------------------------------------------------------------------------
# Sides: what each command is.


def raw_plan_cmd() -> list[str]:
    return [str(BIN / "sqlmesh"), "plan", "--auto-apply", "--no-prompts"]


def dagster_materialize_cmd(select: str, module: str = DEFS_MODULE) -> list[str]:
    return [str(BIN / "dagster"), "asset", "materialize", "-m", module, "--select", select]


def full_side(h: Harness, side: str, n: int, repeat: int, deployed: bool = False) -> Sample:
    """One full build of a fresh copy by ``side`` (raw, dagster or dagster_mp), or Dagster's
    floor for the same graph (``floor``: no SQLMesh, see ``benchmarks/floor_definitions.py``).

    ``deployed``: the copy's caches are warmed in place first and the instance is initialised,
    as on a deployed system; the warehouse (and so SQLMesh's state) is still new.
    """
    project = h.fresh_copy(n, side)
    home = h.fresh_dagster_home(side, initialised=deployed)
    if side == "raw":
        cmd, env = raw_plan_cmd(), h.env()
    elif side == "floor":
        cmd = dagster_materialize_cmd("*", FLOOR_MODULE)
        env = h.env(dagster_home=home)
        env[FLOOR_MODELS_ENV] = str(n)
    else:
        cmd = dagster_materialize_cmd("*")
        env = h.env(project, home)
        if side == "dagster_mp":
            env["MXM_DAGSTER_EXECUTOR"] = "multiprocess"
    if deployed and side != "floor":  # the floor has no cache
        warm_caches(h, project, env, with_dagster=side != "raw")
    scenario = "deployed" if deployed else "full"
    measured, output, log = h.run(f"{scenario}_{side}_n{n}_r{repeat}", cmd, project, env)
    ok = measured["returncode"] == 0
    error = None if ok else f"exit {measured['returncode']}: {tail(output)}"
    if side == "floor":
        done = output.count(" - STEP_SUCCESS - ")
        if ok and done != n:
            ok, error = False, f"exit 0 but {done} of {n} steps succeeded"
    else:
        views = prod_views(project)
        if ok and views != n:
            ok, error = False, f"exit 0 but {views} of {n} prod views exist"
    shutil.rmtree(project, ignore_errors=True)
    extra = side_phases(side, output, measured)
    if side != "raw" and ok:
        extra.update(step_times(h, env))
    return Sample(
        side, repeat, measured["wall_s"], measured["maxrss_mb"], ok, str(log), error, extra
    )


def warm_caches(h: Harness, project: Path, env: dict[str, str], with_dagster: bool) -> None:
    """Untimed: SQLMesh's ``.cache`` (a Context load) and, ``with_dagster``, the code location's
    spec cache (a code server's load), both in ``project`` itself, since the spec cache's key
    holds the folder's path. Then the warehouse is deleted: loading may have created it and
    SQLMesh's state in it, and the timed run must start with nothing built."""
    h.child("warm Context", ["load-sqlmesh"], project, env)
    if with_dagster:
        h.child("warm spec cache", ["load-dagster"], project, env)
    for built in project.glob(f"{DATABASE_FILE}*"):  # the file and any .wal beside it
        built.unlink()


def step_times(h: Harness, env: dict[str, str]) -> dict[str, Any]:
    """The median step time of the newest run of the side's instance, from its event log."""
    try:
        got = h.child("step-times", ["step-times"], h.workdir, env)
    except RuntimeError as exc:  # a measurement, not a side's failure
        print(f"    step times not read: {tail(str(exc), 2)}", flush=True)
        return {}
    return {k: v for k, v in got.items() if k != "steps"}


def side_phases(side: str, output: str, measured: dict[str, Any]) -> dict[str, Any]:
    if side.startswith("raw") or "started_at" not in measured:
        return {}
    found = dagster_phases(output, measured["started_at"], measured["wall_s"])
    if measured.get("command_peak_mb") is not None:  # `dagster asset materialize` runs in-process
        found["run_worker_peak_mb"] = measured["command_peak_mb"]
    return found


# --------------------------------------------------------------------------------------------
# Scenarios.


def rotations(sides: list[str], repeats: int) -> list[list[str]]:
    """Order of sides per repeat: rotate, so no side always runs first (cache, thermal effects)."""
    return [sides[r % len(sides) :] + sides[: r % len(sides)] for r in range(repeats)]


def summarise(samples: list[Sample], sides: list[str]) -> dict[str, Any]:
    """Per side: median wall time, all good times, peak RSS, failures and median phases."""
    summary: dict[str, Any] = {}
    for side in sides:
        good = [s for s in samples if s.side == side and s.ok]
        phases: dict[str, float] = {}
        for key in sorted({k for s in good for k, v in s.extra.items() if is_number(v)}):
            phases[key] = statistics.median(s.extra[key] for s in good if key in s.extra)
        summary[side] = {
            "median_s": statistics.median(s.wall_s for s in good) if good else None,
            "all_s": [s.wall_s for s in good],
            "peak_rss_mb": max((s.maxrss_mb for s in good), default=None),
            "median_phases": phases,
            "failures": [s.error for s in samples if s.side == side and not s.ok],
        }
    return summary


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def median_ratio(summary: dict[str, Any], num: str, den: str) -> float | None:
    a, b = summary.get(num, {}).get("median_s"), summary.get(den, {}).get("median_s")
    return a / b if a is not None and b else None


def run_sides(
    h: Harness, scenario: str, n: int, sides: list[str], repeats: int, one: Any
) -> list[Sample]:
    """Run ``one(side, repeat)`` for every side and repeat; stop a side after it fails once.

    ``one`` returns a Sample or a list of them (e.g. a cold and a warm load of the same copy).
    """
    samples: list[Sample] = []
    broken: set[str] = set()
    for repeat, order in enumerate(rotations(sides, repeats)):
        for side in order:
            if side in broken:
                continue
            got = one(side, repeat)
            for sample in got if isinstance(got, list) else [got]:
                samples.append(sample)
                status = f"{sample.wall_s:8.2f} s" if sample.ok else "FAILED"
                print(f"  [{scenario} n={n} r={repeat}] {sample.side:<14} {status}", flush=True)
                if not sample.ok:
                    broken.add(side)
                    h.failures.append(f"{scenario} n={n} {sample.side}: {sample.error}")
                    print(f"    log: {sample.log}\n    {sample.error}", flush=True)
    return samples
