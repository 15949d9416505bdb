"""The comparer itself: it must report what differs, and nothing a scenario declared (a harness
that finds nothing because it compares nothing would pass every scenario)."""

from __future__ import annotations

from pathlib import Path

from tests.conformance.claims import Claims
from tests.conformance.compare import (
    compare_claims,
    compare_intervals,
    compare_views,
    declared_away,
)
from tests.conformance.state import SQLMeshTruth, TwinState
from tests.conformance.steps import Declared, Step, day

STEP = Step("a step", day(0))
HOURLY = '"warehouse"."retail"."orders_hourly"'
DAILY = '"warehouse"."retail"."sales_daily"'


def test_views_differ_by_content_not_only_by_count() -> None:
    raw = TwinState({"retail.sales": [(1, "a")], "retail.only_raw": []}, {})
    ours = TwinState({"retail.sales": [(1, "b")]}, {})
    found = compare_views(STEP, raw, ours)
    assert [(d.subject, d.kind) for d in found] == [
        ("retail.only_raw", "view"),
        ("retail.sales", "view"),
    ]
    assert "(1, 'a')" in found[1].raw and "(1, 'b')" in found[1].dagster


def test_intervals_per_environment_and_model() -> None:
    raw = TwinState({}, {"prod": {HOURLY: ((0, 3_600_000),)}})
    ours = TwinState({}, {"prod": {HOURLY: ()}, "dev": {HOURLY: ()}})
    found = compare_intervals(STEP, raw, ours)
    assert [(d.subject, d.where) for d in found] == [(HOURLY, "dev"), (HOURLY, "prod")]


def test_a_claim_without_a_write_and_a_write_without_a_claim(tmp_path: Path) -> None:
    state = TwinState({}, {}, written={HOURLY: [(0, 3_600_000)]})
    claims = Claims(success=True, outcomes={DAILY: {"evaluated"}})
    found = compare_claims(STEP, SQLMeshTruth(tmp_path), state, claims, audits={})
    assert {(d.subject, d.dagster) for d in found} == {
        (HOURLY, "no materialization"),
        (DAILY, "materialization: evaluated"),
    }
    # a failed step owes no materialization for what SQLMesh wrote but did not promote
    failed = Claims(success=False, outcomes={}, failed_models={HOURLY})
    assert compare_claims(STEP, SQLMeshTruth(tmp_path), state, failed, audits={}) == []
    # ... but a failed step of a model whose written version the environment now records is false
    state.written_ids = {HOURLY: {"42"}}
    state.identifiers = {"prod": {HOURLY: "42"}}
    (found,) = compare_claims(STEP, SQLMeshTruth(tmp_path), state, failed, audits={})
    assert found.dagster == "its step failed"


def test_declared_differences_are_set_apart_with_patterns() -> None:
    raw = TwinState({"retail__dev.a": [], "retail.b": []}, {})
    ours = TwinState({}, {})
    found = compare_views(STEP, raw, ours)
    declared = (Declared("view", "retail__dev.*", "by design"),)
    undeclared, set_apart = declared_away(found, declared)
    assert [d.subject for d in undeclared] == ["retail.b"]
    assert [d.subject for d in set_apart] == ["retail__dev.a"]


def test_a_partition_record_outside_what_sqlmesh_wrote(tmp_path: Path) -> None:
    day_ms = 86_400_000
    state = TwinState({}, {}, written={DAILY: [(0, day_ms), (day_ms, 2 * day_ms)]})
    inside = Claims(True, {DAILY: {"evaluated"}}, partitions={DAILY: [(day_ms, 2 * day_ms)]})
    assert compare_claims(STEP, SQLMeshTruth(tmp_path), state, inside, audits={}) == []
    outside = Claims(True, {DAILY: {"evaluated"}}, partitions={DAILY: [(2 * day_ms, 3 * day_ms)]})
    (found,) = compare_claims(STEP, SQLMeshTruth(tmp_path), state, outside, audits={})
    assert found.subject == DAILY and "partition records" in found.dagster
