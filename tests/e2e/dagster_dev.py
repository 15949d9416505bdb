"""Drive a real `dagster dev` for a copy of a SQLMesh project, the way a user and the UI do.

`DagsterDev` starts `dagster dev -w workspace.yaml` (webserver, daemon, code server) in its own
process group with a throwaway `DAGSTER_HOME`, and talks to it only over its GraphQL API, the same
API the UI uses. Nothing here imports Dagster or mxm_dagster: what is tested is what a user sees.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKSPACE = REPO / "workspace.yaml"
REFERENCE_PROJECT = REPO / "sqlmesh_project"
ARTIFACTS = REPO / "artifacts"
VENV_BIN = Path(sys.executable).parent

ASSET_JOB = "__ASSET_JOB"
LOAD_TIMEOUT = 120.0
RUN_TIMEOUT = 180.0
STOP_TIMEOUT = 30.0
TERMINAL_RUN_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
MODEL_METADATA_KEY = "sqlmesh/model"
# Settings a developer may have exported that would make the tests exercise something else.
_CLEARED_ENV = (
    "MXM_SQLMESH_GATEWAY",
    "MXM_SQLMESH_ENVIRONMENT",
    "MXM_SQLMESH_PARTITIONS",
    "MXM_DAGSTER_EXECUTOR",
)

# A throwaway instance: no telemetry (no network), no first-run dialog in the UI; runs are queued,
# picked up by the daemon within a second, each executed in its own subprocess (default launcher).
INSTANCE_YAML = """\
telemetry:
  enabled: false
nux:
  enabled: false
run_queue:
  dequeue_interval_seconds: 1
run_launcher:
  module: dagster._core.launcher
  class: DefaultRunLauncher
"""

AssetPath = tuple[str, ...]


LAUNCH_TIMEOUT = 300.0


class GraphQLError(RuntimeError):
    """The webserver answered, but not with what the query asked for."""


# --------------------------------------------------------------------------- project copies


def copy_project(source: Path, dest: Path) -> Path:
    """A clean copy of a SQLMesh project: no warehouse, no SQLMesh or mxm_dagster caches."""
    shutil.copytree(
        source, dest, ignore=shutil.ignore_patterns(".cache", "*.duckdb*", "__pycache__")
    )
    return dest


def warehouse_path(project: Path) -> Path:
    """The DuckDB file of the project's default gateway, resolved against the project dir."""
    config = yaml.safe_load((project / "config.yaml").read_text())
    gateways = config["gateways"]
    gateway = gateways[config.get("default_gateway") or next(iter(gateways))]
    connection = gateway["connection"]
    if connection.get("type") != "duckdb":
        raise ValueError(f"{project} does not use a DuckDB warehouse: {connection.get('type')}")
    database = Path(connection["database"]).expanduser()
    return database if database.is_absolute() else (project / database).resolve()


def query_warehouse(database: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read-only, and closed straight away: a test must not hold the file a run writes."""
    connection = duckdb.connect(str(database), read_only=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


_SQL_MODEL_NAME = re.compile(r"^\s*MODEL\s*\(\s*name\s+([^\s,]+)", re.IGNORECASE | re.MULTILINE)
_PY_MODEL_NAME = re.compile(r"@model\(\s*[\"']([^\"']+)[\"']")


def _short_name(name: str) -> str:
    """`"catalog"."schema"."table"` or `schema.table` -> `schema.table`, for comparisons."""
    parts = [p.strip('"').lower() for p in name.split(".")]
    return ".".join(parts[-2:])


def project_model_names(project: Path) -> set[str]:
    """`schema.table` of every model file in the project, read from the files themselves."""
    names: set[str] = set()
    for path in sorted((project / "models").rglob("*")):
        pattern = {".sql": _SQL_MODEL_NAME, ".py": _PY_MODEL_NAME}.get(path.suffix)
        match = pattern.search(path.read_text()) if pattern else None
        if match:
            names.add(_short_name(match.group(1)))
    return names


def model_file(project: Path, model: str) -> Path:
    """The SQL file that defines `model` (`schema.table`)."""
    for path in sorted((project / "models").rglob("*.sql")):
        match = _SQL_MODEL_NAME.search(path.read_text())
        if match and _short_name(match.group(1)) == _short_name(model):
            return path
    raise FileNotFoundError(f"No SQL model file for {model} under {project / 'models'}")


def add_constant_column(project: Path, model: str, column: str, value: str) -> Path:
    """Edit a SQL model as a developer would: one more computed column in its final SELECT.

    The query is rewritten with SQLMesh's own parser and formatter, so the edit does not depend on
    the model's current formatting.
    """
    from sqlglot import exp
    from sqlmesh.core.dialect import format_model_expressions, parse

    path = model_file(project, model)
    expressions = parse(path.read_text(), default_dialect="duckdb")
    query = expressions[-1]
    if not isinstance(query, exp.Select):
        raise ValueError(f"{path}: the model query is a {type(query).__name__}, not a SELECT")
    query.select(exp.alias_(exp.Literal.string(value), column), copy=False)
    path.write_text(format_model_expressions(expressions, dialect="duckdb") + "\n")
    return path


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """A port nothing listens on now, so parallel or leftover instances never collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _default_stop_signals() -> None:
    """Undo an inherited SIG_IGN for SIGINT/SIGTERM (background jobs of a shell ignore SIGINT).

    dagster dev maps SIGTERM to whatever SIGINT does, so an ignored SIGINT would make it
    ignore SIGTERM too and only SIGKILL could stop it.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a live process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return fields[0], int(fields[2])


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pgid and stat[0] != "Z":
                pids.append(int(entry.name))
    return sorted(pids)


def _cmdline(pid: int) -> str:
    """Enough of a process's command line to tell webserver, daemon and code server apart."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:160]


def processes_holding(pids: Iterable[int], target: Path) -> dict[int, str]:
    """pid -> command line of every process with an open descriptor on `target` (or its WAL)."""
    prefix = str(target.resolve())
    holders: dict[int, str] = {}
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            fds = list(fd_dir.iterdir())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith(prefix):
                holders[pid] = f"{_cmdline(pid)} -> {link}"
    return holders


# --------------------------------------------------------------------------- GraphQL records


@dataclass(frozen=True)
class AssetCheck:
    """An asset check as the UI lists it; blocking ones must pass for the run to succeed."""

    name: str
    blocking: bool


@dataclass(frozen=True)
class AssetNode:
    """What the UI knows about one asset."""

    key: AssetPath
    op_names: tuple[str, ...]
    code_version: str | None
    materializable: bool
    checks: tuple[AssetCheck, ...]
    children: tuple[AssetPath, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str | None:
        """`schema.table` of the SQLMesh model behind the asset, None for other assets."""
        name = self.metadata.get(MODEL_METADATA_KEY)
        return _short_name(name) if name else None

    @property
    def user_string(self) -> str:
        return "/".join(self.key)


@dataclass(frozen=True)
class Materialization:
    """One ASSET_MATERIALIZATION event of a run, with its metadata as text."""

    key: AssetPath
    step_key: str | None
    metadata: Mapping[str, str]


_METADATA_FIELDS = """
  label
  ... on TextMetadataEntry { text }
  ... on IntMetadataEntry { intRepr }
  ... on FloatMetadataEntry { floatRepr }
  ... on BoolMetadataEntry { boolValue }
  ... on JsonMetadataEntry { jsonString }
  ... on MarkdownMetadataEntry { mdStr }
"""


def _metadata(entries: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """label -> value as text: the tests compare values, whatever their metadata type."""
    values: dict[str, str] = {}
    for entry in entries:
        for name in ("text", "intRepr", "floatRepr", "boolValue", "jsonString", "mdStr"):
            if name in entry and entry[name] is not None:
                values[entry["label"]] = str(entry[name])
    return values


def _key_input(key: AssetPath) -> dict[str, list[str]]:
    """An `AssetKeyInput` for GraphQL variables."""
    return {"path": list(key)}


# --------------------------------------------------------------------------- dagster dev


class DagsterDev:
    """One `dagster dev` process group: webserver, daemon, code server and the runs they launch."""

    def __init__(
        self, project: Path, workdir: Path, port: int | None = None, instance_settings: str = ""
    ) -> None:
        """`instance_settings`: more top-level dagster.yaml sections (e.g. `run_retries`)."""
        self.project = project
        self.instance_settings = instance_settings
        self.workdir = workdir
        self.home = workdir / "dagster_home"
        self.log_path = workdir / "dagster_dev.log"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.location = ""
        self.repository = ""
        self.killed = False
        self.exited_early = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._http = requests.Session()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start without waiting; the instance and the project come only from the environment."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text(INSTANCE_YAML + self.instance_settings)
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED_ENV}
        env.update(
            DAGSTER_HOME=str(self.home),
            MXM_SQLMESH_PROJECT=str(self.project),
            PYTHONUNBUFFERED="1",
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        )
        dagster = VENV_BIN / "dagster"
        command = [str(dagster) if dagster.exists() else "dagster", "dev"]
        command += ["-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(self.port)]
        self._log_file = self.log_path.open("wb")
        # Its own session, so the whole tree (and every run it launches) shares one process group.
        self._proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_stop_signals,
        )

    @property
    def pgid(self) -> int:
        assert self._proc is not None, "dagster dev was not started"
        return self._proc.pid

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_until_loaded(self, timeout: float = LOAD_TIMEOUT) -> None:
        """Until the webserver answers and reports the code location loaded (or failed)."""
        deadline = time.monotonic() + timeout
        last_problem = "webserver not answering yet"
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"dagster dev exited early:\n{self.log_tail()}")
            try:
                statuses = self.graphql(
                    "{ locationStatusesOrError { __typename"
                    " ... on WorkspaceLocationStatusEntries { entries { name loadStatus } }"
                    " ... on PythonError { message } } }",
                    timeout=10,
                )["locationStatusesOrError"]
            except (requests.RequestException, GraphQLError) as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
                time.sleep(0.5)
                continue
            entries = statuses.get("entries") or []
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                self._read_workspace()
                return
            last_problem = f"location statuses: {statuses}"
            time.sleep(0.5)
        raise TimeoutError(
            f"dagster dev did not load the code location within {timeout:.0f} s "
            f"({last_problem}):\n{self.log_tail()}"
        )

    def _read_workspace(self) -> None:
        entries = self.graphql(
            "{ workspaceOrError { __typename ... on Workspace { locationEntries { name"
            " locationOrLoadError { __typename"
            " ... on RepositoryLocation { repositories { name } }"
            " ... on PythonError { message stack } } } }"
            " ... on PythonError { message } } }"
        )["workspaceOrError"].get("locationEntries")
        if not entries:
            raise GraphQLError("the workspace has no code location")
        location = entries[0]["locationOrLoadError"]
        if location is None or location["__typename"] != "RepositoryLocation":
            detail = "".join(location.get("stack", [])) if location else ""
            raise RuntimeError(
                f"code location {entries[0]['name']} failed to load: "
                f"{(location or {}).get('message')}\n{detail}"
            )
        self.location = entries[0]["name"]
        self.repository = location["repositories"][0]["name"]

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM to the whole group, wait for every member, SIGKILL whatever is left."""
        proc = self._proc
        if proc is None or self._log_file is None:
            return
        self.exited_early = proc.poll() is not None
        self._signal_group(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        if not self._wait_for_empty_group(2.0):
            # dagster dev restarts a code server that exits while it is still shutting down
            # (it got the same SIGTERM); that orphan ends on a second SIGTERM.
            self._signal_group(signal.SIGTERM)
            self._wait_for_empty_group(10.0)
        if proc.poll() is None or group_pids(self.pgid):
            self.killed = True
            self._signal_group(signal.SIGKILL)
            proc.wait(timeout=10)
            self._wait_for_empty_group(10.0)
        self._http.close()
        self._log_file.close()
        self._log_file = None

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pgid, signum)
        except ProcessLookupError:
            pass

    def _wait_for_empty_group(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while group_pids(self.pgid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True

    def log_tail(self, max_chars: int = 20_000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no dagster dev log)"
        return text if len(text) <= max_chars else "...\n" + text[-max_chars:]

    def processes_holding(self, target: Path) -> dict[int, str]:
        """Members of the dagster dev process group with `target` open."""
        return processes_holding(group_pids(self.pgid), target)

    # ------------------------------------------------------------------ GraphQL

    def graphql(
        self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60
    ) -> dict[str, Any]:
        """The query's `data`; GraphQL errors (sent with HTTP 400 or 200) raise GraphQLError."""
        response = self._http.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": dict(variables or {})},
            timeout=timeout,
        )
        try:
            body = response.json()
        except ValueError:
            response.raise_for_status()
            raise GraphQLError(
                f"not JSON ({response.status_code}): {response.text[:500]}"
            ) from None
        if body.get("errors"):
            raise GraphQLError("; ".join(e.get("message", str(e)) for e in body["errors"]))
        response.raise_for_status()
        return body["data"]

    def asset_nodes(self) -> dict[AssetPath, AssetNode]:
        """Every asset of the workspace as the UI's asset graph sees it."""
        nodes = self.graphql(
            "{ assetNodes { assetKey { path } opNames opVersion isMaterializable"
            " dependedByKeys { path }"
            f" metadataEntries {{ {_METADATA_FIELDS} }}"
            " assetChecksOrError { __typename ... on AssetChecks { checks { name blocking } } }"
            " } }"
        )["assetNodes"]
        result: dict[AssetPath, AssetNode] = {}
        for node in nodes:
            key = tuple(node["assetKey"]["path"])
            checks = node["assetChecksOrError"].get("checks") or []
            result[key] = AssetNode(
                key=key,
                op_names=tuple(node["opNames"]),
                code_version=node["opVersion"],
                materializable=node["isMaterializable"],
                checks=tuple(AssetCheck(c["name"], c["blocking"]) for c in checks),
                children=tuple(tuple(k["path"]) for k in node["dependedByKeys"]),
                metadata=_metadata(node["metadataEntries"]),
            )
        return result

    def launch_assets(
        self,
        nodes: Iterable[AssetNode],
        partition_range: tuple[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Materialize these assets and their checks, as the UI's Materialize button does; with a
        partition range as one run over it (the single-run backfill the launchpad starts); `tags`
        as the launchpad's tag editor adds them (e.g. `dagster/max_retries`)."""
        nodes = list(nodes)
        selector = {
            "repositoryLocationName": self.location,
            "repositoryName": self.repository,
            "pipelineName": ASSET_JOB,
            "assetSelection": [_key_input(n.key) for n in nodes],
            "assetCheckSelection": [
                {"assetKey": _key_input(n.key), "name": c.name} for n in nodes for c in n.checks
            ],
        }
        tags_input = (
            [
                {"key": "dagster/asset_partition_range_start", "value": partition_range[0]},
                {"key": "dagster/asset_partition_range_end", "value": partition_range[1]},
            ]
            if partition_range
            else []
        )
        tags_input += [{"key": k, "value": v} for k, v in (tags or {}).items()]
        metadata = {"tags": tags_input}
        result = self.graphql(
            "mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {"
            " __typename ... on LaunchRunSuccess { run { runId } }"
            " ... on Error { message } } }",
            {"params": {"selector": selector, "mode": "default", "executionMetadata": metadata}},
            # launching a range stores a "planned" event per partition and asset before it answers
            timeout=LAUNCH_TIMEOUT,
        )["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise GraphQLError(f"launchRun: {result['__typename']}: {result.get('message')}")
        return result["run"]["runId"]

    def launch_checks(self, nodes: Iterable[AssetNode]) -> str:
        """Execute these assets' checks alone, as "Execute all" on a Checks tab does: no asset
        selected, only their checks."""
        selector = {
            "repositoryLocationName": self.location,
            "repositoryName": self.repository,
            "pipelineName": ASSET_JOB,
            "assetSelection": [],
            "assetCheckSelection": [
                {"assetKey": _key_input(n.key), "name": c.name} for n in nodes for c in n.checks
            ],
        }
        result = self.graphql(
            "mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {"
            " __typename ... on LaunchRunSuccess { run { runId } }"
            " ... on Error { message } } }",
            {"params": {"selector": selector, "mode": "default"}},
            timeout=LAUNCH_TIMEOUT,
        )["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise GraphQLError(f"launchRun: {result['__typename']}: {result.get('message')}")
        return result["run"]["runId"]

    def run(self, run_id: str) -> dict[str, Any]:
        """Status, tags, asset selection, the steps it was to execute (None: all of them) and
        per-step status of one run."""
        return self.graphql(
            "query($id: ID!) { runOrError(runId: $id) { __typename"
            " ... on Run { runId status parentRunId stepKeysToExecute tags { key value }"
            " assetSelection { path } stepStats { stepKey status } }"
            " ... on Error { message } } }",
            {"id": run_id},
        )["runOrError"]

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest runs first."""
        return self.graphql(
            "query($limit: Int) { runsOrError(limit: $limit) { __typename"
            " ... on Runs { results { runId status tags { key value } assetSelection { path } } }"
            " ... on Error { message } } }",
            {"limit": limit},
        )["runsOrError"]["results"]

    def wait_for_run(self, run_id: str, timeout: float = RUN_TIMEOUT) -> str:
        """The run's final status; raises on timeout with what the run reported so far."""
        deadline = time.monotonic() + timeout
        status = "?"
        while time.monotonic() < deadline:
            status = self.run(run_id).get("status", "?")
            if status in TERMINAL_RUN_STATUSES:
                return status
            time.sleep(1)
        raise TimeoutError(
            f"run {run_id} still {status} after {timeout:.0f} s:\n{self.run_errors(run_id)}"
        )

    def run_events(self, run_id: str) -> list[dict[str, Any]]:
        """Every event of the run's event log, oldest first."""
        events: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = self.graphql(
                "query($id: ID!, $cursor: String) {"
                " logsForRun(runId: $id, afterCursor: $cursor, limit: 500) { __typename"
                " ... on EventConnection { cursor hasMore events { __typename"
                " ... on MessageEvent { message stepKey level }"
                " ... on MaterializationEvent { assetKey { path }"
                f" metadataEntries {{ {_METADATA_FIELDS} }} }}"
                " ... on ExecutionStepFailureEvent { error { message cause { message } } }"
                " ... on RunFailureEvent { error { message } } } }"
                " ... on Error { message } } }",
                {"id": run_id, "cursor": cursor},
            )["logsForRun"]
            if page["__typename"] != "EventConnection":
                raise GraphQLError(f"logsForRun: {page}")
            events.extend(page["events"])
            if not page["hasMore"] or not page["events"]:
                return events
            cursor = page["cursor"]

    def run_materializations(self, run_id: str) -> list[Materialization]:
        """Every asset materialization the run recorded, including ones outside its selection."""
        return [
            Materialization(
                key=tuple(e["assetKey"]["path"]),
                step_key=e.get("stepKey"),
                metadata=_metadata(e["metadataEntries"]),
            )
            for e in self.run_events(run_id)
            if e["__typename"] == "MaterializationEvent"
        ]

    def run_errors(self, run_id: str) -> str:
        """The run's errors in a few lines, for assertion messages."""
        lines = []
        for event in self.run_events(run_id):
            error = event.get("error")
            if error or event.get("level") == "ERROR":
                line = f"[{event.get('stepKey') or 'run'}] {event.get('message', '')}"
                if error:
                    line += f" {error.get('message', '')}"
                    if error.get("cause"):
                        line += f" caused by: {error['cause'].get('message', '')}"
                lines.append(line.strip())
        return "\n".join(lines) or "(no errors in the run's event log)"

    def check_executions(
        self, key: AssetPath, check_name: str, limit: int = 10
    ) -> list[dict[str, Any]]:
        """The newest executions of one asset check (run id, status, step, the evaluation's
        `metadata` as text), newest first."""
        executions = self.graphql(
            "query($key: AssetKeyInput!, $name: String!, $limit: Int!) {"
            " assetCheckExecutions(assetKey: $key, checkName: $name, limit: $limit) {"
            " runId status stepKey evaluation { success severity"
            f" metadataEntries {{ {_METADATA_FIELDS} }} }} }} }}",
            {"key": _key_input(key), "name": check_name, "limit": limit},
        )["assetCheckExecutions"]
        for execution in executions:
            evaluation = execution.get("evaluation") or {}
            execution["metadata"] = _metadata(evaluation.get("metadataEntries") or [])
        return executions

    def reload_location(self) -> None:
        """The UI's "Reload definitions": the code server re-imports the code location."""
        result = self.graphql(
            "mutation($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {"
            " __typename ... on WorkspaceLocationEntry { loadStatus"
            " locationOrLoadError { __typename ... on PythonError { message } } }"
            " ... on Error { message } } }",
            {"name": self.location},
            timeout=LOAD_TIMEOUT,
        )["reloadRepositoryLocation"]
        if result["__typename"] != "WorkspaceLocationEntry":
            raise GraphQLError(f"reloadRepositoryLocation: {result}")
        self.wait_until_loaded()


def save_log(dev: DagsterDev, name: str) -> Path:
    """Keep a dagster dev log under artifacts/e2e/ (for CI to upload when a test failed)."""
    target = ARTIFACTS / "e2e" / f"{name}-dagster-dev.log"
    target.parent.mkdir(parents=True, exist_ok=True)
    if dev.log_path.is_file():
        shutil.copyfile(dev.log_path, target)
    return target
