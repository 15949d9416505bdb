"""Dagster-legal names for SQLMesh identifiers."""

from __future__ import annotations

import re

import pytest

from mxm_dagster.common.names import safe_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("orders", "orders"),
        ('"orders"', "orders"),
        ("unique-key check", "unique_key_check"),
        ("db.schema.table", "db_schema_table"),
        ("_leading_and_trailing_", "leading_and_trailing"),
        ("Ünïcode", "n_code"),
    ],
)
def test_a_name_keeps_letters_digits_and_underscores(text: str, expected: str) -> None:
    assert safe_name(text) == expected


def test_a_name_with_no_legal_character_becomes_a_stable_hash() -> None:
    name = safe_name("---")
    assert re.fullmatch(r"_[0-9a-f]{8}", name)
    assert safe_name("---") == name
    assert safe_name("+++") != name
