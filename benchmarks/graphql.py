"""The ``graphql`` scenario: how fast the UI answers for the asset graph and an asset's page.

For each side, a real ``dagster-webserver`` on a free port serves one code location: mxm_dagster
on a copy of the generated project (spec cache warmed first, as deployed) or Dagster's floor for
the same graph. Once the location is loaded, the queries the UI makes are POSTed to ``/graphql``
and timed, several times each: the asset graph (``LocationWorkspaceAssetsQuery``, from which the UI
draws the graph and the catalog) and one asset's page (``AssetViewDefinitionQuery``). Both are
faithful subsets of the UI's own (dagster-ui ``WorkspaceQueries.tsx`` and ``AssetView``; fragments
inlined, a few nested fragments left out). The webserver's and the code server's resident memory
(the webserver's child processes) are read once the queries are done.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import time
import urllib.request
from dataclasses import asdict
from typing import Any

from benchmarks.generate_project import FLOOR_MODELS_ENV, leaf_models, plan_models
from benchmarks.harness import (
    BIN,
    DEFS_MODULE,
    FLOOR_MODULE,
    Harness,
    Sample,
    median_ratio,
    run_sides,
    summarise,
    tail,
    warm_caches,
)

#: How often each query is timed per webserver; the median is the sample.
QUERY_REPEATS = 5
SIDES = ["dagster", "floor"]
QUERIES = ("graph", "asset")

_LOCATIONS = """
query BenchLocations {
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""

#: The UI's LocationWorkspaceAssetsQuery with WorkspaceRepositoryAssets, RepositoryAsset and
#: AssetBaseNodeFragment inlined (the freshness policy fragment is left out).
GRAPH_QUERY = """
query LocationWorkspaceAssetsQuery($name: String!) {
  workspaceLocationEntryOrError(name: $name) {
    ... on WorkspaceLocationEntry {
      id
      name
      loadStatus
      updatedTimestamp
      versionKey
      locationOrLoadError {
        ... on RepositoryLocation {
          id
          name
          repositories {
            id
            name
            assetNodes {
              id
              changedReasons
              groupName
              opNames
              isMaterializable
              isObservable
              isExecutable
              isPartitioned
              isAutoCreatedStub
              hasAssetChecks
              computeKind
              hasMaterializePermission
              hasWipePermission
              hasReportRunlessAssetEventPermission
              assetKey { path }
              partitionDefinition { dimensionTypes { type dynamicPartitionsDefinitionName } }
              automationCondition { __typename }
              description(characterLimit: 240)
              owners {
                ... on UserAssetOwner { email }
                ... on TeamAssetOwner { team }
              }
              tags { key value }
              storageAddress { storageKind tableName }
              jobNames
              kinds
              graphName
              dependencyKeys { path }
            }
            assetGroups { id groupName }
          }
        }
        ... on PythonError { message }
      }
    }
  }
}
"""

#: The UI's AssetViewDefinitionQuery with AssetViewDefinitionNode and AssetNodeFragment inlined
#: (the config, instigator, underlying-ops and op-metadata fragments are left out).
ASSET_QUERY = """
query AssetViewDefinitionQuery($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    ... on Asset {
      id
      key { path }
      hasDefinitionOrRecord
      assetMaterializations(limit: 1) { timestamp runId }
      definition {
        id
        pools
        opVersion
        groupName
        isExecutable
        automationCondition { label expandedLabel }
        partitionDefinition { description dimensionTypes { type dynamicPartitionsDefinitionName } }
        partitionKeysByDimension { name }
        owners {
          ... on TeamAssetOwner { team }
          ... on UserAssetOwner { email }
        }
        backfillPolicy { description }
        opTags { key value }
        requiredResources { resourceKey }
        repository { id name location { id name } }
        hasReportRunlessAssetEventPermission
        graphName
        hasMaterializePermission
        hasWipePermission
        jobNames
        changedReasons
        opNames
        description
        computeKind
        isPartitioned
        isObservable
        isMaterializable
        isAutoCreatedStub
        assetKey { path }
        tags { key value }
        kinds
      }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(port: int, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """One GraphQL request, as the UI sends it; raises on an HTTP or GraphQL error."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        answer = json.loads(response.read())
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


def _wait_loaded(port: int, server: subprocess.Popen[str], timeout_s: float) -> str:
    """The code location's name once the webserver reports it loaded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"webserver exited with {server.returncode}")
        try:
            entries = post(port, _LOCATIONS)["workspaceOrError"]["locationEntries"]
        except (OSError, RuntimeError, KeyError):
            time.sleep(0.5)
            continue
        if entries and entries[0]["loadStatus"] == "LOADED":
            loaded = entries[0]["locationOrLoadError"]
            if loaded["__typename"] != "RepositoryLocation":
                raise RuntimeError(f"code location failed to load: {loaded}")
            return str(entries[0]["name"])
        time.sleep(0.5)
    raise RuntimeError(f"code location not loaded after {timeout_s} s")


def _rss_mb(pid: int) -> tuple[float, float]:
    """(the webserver's own RSS, the sum over its descendants: the code server), in MB."""
    import psutil

    webserver = psutil.Process(pid)
    children = webserver.children(recursive=True)
    code_server = 0
    for child in children:
        try:
            code_server += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return webserver.memory_info().rss / 2**20, code_server / 2**20


def _timed(port: int, query: str, variables: dict[str, Any]) -> tuple[list[float], Any]:
    times, data = [], None
    for _ in range(QUERY_REPEATS):
        started = time.perf_counter()
        data = post(port, query, variables)
        times.append(time.perf_counter() - started)
    return times, data


def _graph_assets(data: dict[str, Any]) -> int:
    location = data["workspaceLocationEntryOrError"]["locationOrLoadError"]
    return sum(len(repo["assetNodes"]) for repo in location["repositories"])


def _serve(h: Harness, side: str, n: int, repeat: int) -> list[Sample]:
    """Start a webserver for ``side``, time both queries, stop it; one Sample per query."""
    project = h.fresh_copy(n, f"graphql_{side}")
    home = h.fresh_dagster_home(f"graphql_{side}", initialised=True)
    if side == "floor":
        module, env = FLOOR_MODULE, h.env(dagster_home=home)
        env[FLOOR_MODELS_ENV] = str(n)
    else:
        module, env = DEFS_MODULE, h.env(project, home)
        warm_caches(h, project, env, with_dagster=True)
    port = _free_port()
    log = h.logdir / f"graphql_{side}_n{n}_r{repeat}.log"
    cmd = [str(BIN / "dagster-webserver"), "-m", module, "-h", "127.0.0.1", "-p", str(port)]
    key = leaf_models(plan_models(n))[-1]
    extra: dict[str, Any] = {}
    with log.open("w") as out:
        server = subprocess.Popen(
            cmd, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            started = time.perf_counter()
            location = _wait_loaded(port, server, h.timeout_s)
            extra["location_loaded_s"] = time.perf_counter() - started
            graph_times, graph = _timed(port, GRAPH_QUERY, {"name": location})
            asset_times, asset = _timed(
                port, ASSET_QUERY, {"assetKey": {"path": [key.schema, key.table]}}
            )
            extra["webserver_rss_mb"], extra["code_server_rss_mb"] = _rss_mb(server.pid)
            error = None
        except (OSError, RuntimeError, KeyError, TypeError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    if error is None:
        if _graph_assets(graph) != n:
            error = f"the graph query answered {_graph_assets(graph)} assets of {n}"
        elif asset["assetOrError"].get("key", {}).get("path") != [key.schema, key.table]:
            error = f"the asset query answered {tail(json.dumps(asset), 1)}"
    if error is not None:
        error += f" (log {log})"
    rss = extra.get("code_server_rss_mb", float("nan"))
    samples = []
    for query, times in (("graph", graph_times), ("asset", asset_times)) if error is None else ():
        samples.append(
            Sample(
                f"{side}_{query}",
                repeat,
                statistics.median(times),
                rss,
                True,
                str(log),
                None,
                {**extra, "query_times_s": times},
            )
        )
    shutil.rmtree(project, ignore_errors=True)
    return samples or [Sample(f"{side}_graph", repeat, float("nan"), rss, False, str(log), error)]


def scenario_graphql(h: Harness, n: int, repeats: int) -> dict[str, Any]:
    samples = run_sides(h, "graphql", n, SIDES, repeats, lambda side, r: _serve(h, side, n, r))
    names = [f"{side}_{query}" for side in SIDES for query in QUERIES]
    summary = summarise(samples, names)
    return {
        "scenario": "graphql",
        "n_models": n,
        "repeats": repeats,
        "query_repeats": QUERY_REPEATS,
        "sides": summary,
        **{
            f"ratio_{query}": median_ratio(summary, f"dagster_{query}", f"floor_{query}")
            for query in QUERIES
        },
        "target": 1.2,
        "samples": [asdict(s) for s in samples],
    }
