"""The one package that touches SQLMesh's Python API, split by concern.

Everything else in mxm_dagster works on the plain records in `mxm_dagster.records`, so a SQLMesh
upgrade that moves an internal API changes this package only. Callers use the names below.
"""

from mxm_dagster.child.sqlmesh_api.audits import audit_current_data
from mxm_dagster.child.sqlmesh_api.config import (
    default_gateway,
    gateway_names,
    load_project_config,
    postgres_state,
    warehouse_path,
    with_cache_dir,
)
from mxm_dagster.child.sqlmesh_api.context import close_context, load_models, open_context
from mxm_dagster.child.sqlmesh_api.data_versions import (
    data_versions,
    served_models,
    written_data_version,
)
from mxm_dagster.child.sqlmesh_api.errors import (
    destructive_refusal,
    is_plan_failure,
    migration_details,
)
from mxm_dagster.child.sqlmesh_api.introspection import project_spec
from mxm_dagster.child.sqlmesh_api.preview import (
    build_plan,
    check_stages,
    model_previews,
    plain_text,
)
from mxm_dagster.child.sqlmesh_api.selection import select_model_names
from mxm_dagster.child.sqlmesh_api.state import (
    DueIntervals,
    apply_plan,
    changed_models,
    count_rows,
    downstream,
    due_intervals,
    environment_model_names,
    execution_timestamp,
    finalized_plan_id,
    has_metadata_only_changes,
    plan_arguments,
    promoted_tables,
    run_models,
    run_standalone_audits,
    served_table,
    serves_project,
    upstream,
)
from mxm_dagster.child.sqlmesh_api.unit_tests import UnitTestReport, run_unit_tests

__all__ = [
    "DueIntervals",
    "UnitTestReport",
    "apply_plan",
    "audit_current_data",
    "build_plan",
    "changed_models",
    "check_stages",
    "close_context",
    "count_rows",
    "data_versions",
    "default_gateway",
    "destructive_refusal",
    "downstream",
    "due_intervals",
    "environment_model_names",
    "execution_timestamp",
    "finalized_plan_id",
    "gateway_names",
    "has_metadata_only_changes",
    "is_plan_failure",
    "load_models",
    "load_project_config",
    "migration_details",
    "model_previews",
    "open_context",
    "plain_text",
    "plan_arguments",
    "postgres_state",
    "project_spec",
    "promoted_tables",
    "run_models",
    "run_standalone_audits",
    "run_unit_tests",
    "select_model_names",
    "served_models",
    "served_table",
    "serves_project",
    "upstream",
    "warehouse_path",
    "with_cache_dir",
    "written_data_version",
]
