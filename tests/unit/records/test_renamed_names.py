"""`ProjectSpec` became `LoadedModels` ("project" now means `SQLMeshProject` alone, docs/names.md);
the old names still import, warning, as the same objects."""

from __future__ import annotations

import pytest

import mxm_dagster
from mxm_dagster.assets.translator import SQLMeshTranslator
from mxm_dagster.records import specs
from mxm_dagster.records.specs import LoadedModels


def test_the_old_name_of_loaded_models_warns_and_is_the_same_class() -> None:
    assert "LoadedModels" in mxm_dagster.__all__ and "ProjectSpec" not in mxm_dagster.__all__
    with pytest.warns(DeprecationWarning, match="use LoadedModels") as caught:
        old = mxm_dagster.ProjectSpec
    assert old is LoadedModels
    assert caught[0].filename == __file__  # the warning names the code to change
    with pytest.warns(DeprecationWarning, match="use LoadedModels"):
        from mxm_dagster.records.specs import ProjectSpec
    assert ProjectSpec is LoadedModels
    with pytest.raises(AttributeError):
        _ = specs.NoSuchName  # type: ignore[attr-defined]


def test_a_translators_old_project_attribute_warns_and_is_its_loaded_models() -> None:
    loaded = LoadedModels(default_catalog=None, dialect="duckdb", engine="duckdb", models=())
    translator = SQLMeshTranslator(loaded)
    with pytest.warns(DeprecationWarning, match="use loaded"):
        assert translator.project is loaded
