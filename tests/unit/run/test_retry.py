"""What a retried step runs SQLMesh for, and when an outcome is spent, on hand-made specs."""

from __future__ import annotations

import dagster as dg
import pytest

from mxm_dagster.assets.loader import RESOURCE_KEY, build_sqlmesh_assets
from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.records.results import ModelStatus
from mxm_dagster.records.specs import LoadedModels, ModelSpec
from mxm_dagster.run import retry
from mxm_dagster.run.resource import SQLMeshResultsResource
from tests.unit.specs_factory import model

# a -> c <- b;  c -> d;  e (independent);  f -> g
A, B, C, D, E, F, G = (model(f'"db"."s"."{n}"', kind="FULL", interval_unit=None) for n in "abcdefg")
C = model(C.name, kind="FULL", interval_unit=None, depends_on=(A.name, B.name))
D = model(D.name, kind="FULL", interval_unit=None, depends_on=(C.name,))
G = model(G.name, kind="FULL", interval_unit=None, depends_on=(F.name,))
MODELS = (A, B, C, D, E, F, G)
KEYS = {m.name: dg.AssetKey(["s", m.table]) for m in MODELS}
ALL = set(KEYS)
OK, FAILED, SKIPPED = ModelStatus.EVALUATED, ModelStatus.FAILED, ModelStatus.SKIPPED


def project(*models: ModelSpec) -> LoadedModels:
    return LoadedModels(default_catalog="db", dialect="duckdb", engine="duckdb", models=models)


@pytest.fixture(scope="module")
def graph():  # type: ignore[no-untyped-def]
    spec = project(*MODELS)
    assets = build_sqlmesh_assets(spec, "/nowhere", SQLMeshTranslator(spec))
    resources = {RESOURCE_KEY: SQLMeshResultsResource()}  # required to build; never run here
    return dg.Definitions(assets=assets, resources=resources).resolve_asset_graph()


def statuses(**by_table: ModelStatus) -> dict[str, ModelStatus]:
    return {f'"db"."s"."{table}"': status for table, status in by_table.items()}


def names(*tables: str) -> set[str]:
    return {f'"db"."s"."{t}"' for t in tables}


def test_a_retry_runs_the_failed_model_and_what_it_blocked_not_what_succeeded(graph) -> None:
    latest = statuses(a=FAILED, b=OK, c=SKIPPED, d=SKIPPED, e=OK, f=OK, g=OK)
    assert retry.retry_models_of(graph, KEYS, ALL, latest, set(), A.name) == names("a", "c", "d")


def test_steps_retrying_together_share_the_execution(graph) -> None:
    latest = statuses(a=FAILED, b=FAILED, c=SKIPPED, d=SKIPPED, e=FAILED, f=OK, g=OK)
    assert retry.retry_models_of(graph, KEYS, ALL, latest, set(), A.name) == names(
        "a", "b", "c", "d", "e"
    )


def test_nothing_below_a_model_that_failed_for_good_runs_on_its_old_data(graph) -> None:
    latest = statuses(a=FAILED, b=FAILED, c=SKIPPED, d=SKIPPED, e=OK, f=OK, g=OK)
    ended = names("b")  # b's step is out of retries
    assert retry.retry_models_of(graph, KEYS, ALL, latest, ended, A.name) == names("a")


def test_a_step_that_ended_is_not_run_again(graph) -> None:
    latest = statuses(a=OK, b=OK, c=OK, d=OK, e=OK, f=FAILED, g=SKIPPED)
    ended = names("a", "b", "c", "d", "e")
    assert retry.retry_models_of(graph, KEYS, ALL, latest, ended, F.name) == names("f", "g")


def test_only_the_run_s_models_run_again(graph) -> None:
    latest = statuses(a=FAILED, c=SKIPPED, d=SKIPPED)
    run = names("a", "c")  # a re-execution that selected a and c only
    assert retry.retry_models_of(graph, KEYS, run, latest, set(), A.name) == names("a", "c")


def test_an_outcome_is_spent_once_a_retry_followed_the_execution() -> None:
    assert retry.is_spent_of(FAILED, 100.0, [101.0])
    assert retry.is_spent_of(SKIPPED, 100.0, [99.0, 105.0])
    # a retry before the execution started: this execution was started for that retry
    assert not retry.is_spent_of(FAILED, 100.0, [99.0])
    assert not retry.is_spent_of(FAILED, 100.0, [])
    assert not retry.is_spent_of(OK, 100.0, [101.0])  # success is handed out again
    assert not retry.is_spent_of(None, 100.0, [101.0])


class _Retrying(SQLMeshTranslator):
    def get_retry_policy(self, model: ModelSpec) -> dg.RetryPolicy | None:
        return dg.RetryPolicy(max_retries=3) if model.name == A.name else None


def _policies(assets: list) -> dict[str, dg.RetryPolicy | None]:
    return {a.key.path[-1]: a.op.retry_policy for a in assets if isinstance(a, dg.AssetsDefinition)}


def test_the_translator_s_retry_policy_wins_over_the_builder_s() -> None:
    spec = project(A, E)
    default = dg.RetryPolicy(max_retries=1)
    policies = _policies(build_sqlmesh_assets(spec, "/x", _Retrying(spec), retry_policy=default))
    assert policies == {"a": dg.RetryPolicy(max_retries=3), "e": default}
    assert _policies(build_sqlmesh_assets(spec, "/x", SQLMeshTranslator(spec))) == {
        "a": None,
        "e": None,
    }
