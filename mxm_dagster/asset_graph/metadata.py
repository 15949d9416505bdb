"""The names under which a model's definitions carry its SQLMesh facts into the asset graph.

The loader and the translator write them on every model's asset and step; the run side, the
sensors and the plan preview read them back from the definitions being run, never from memory of
what was built. Dagster's own partition tags are here too: a run's partition range is read from
them.
"""

MODEL_NAME_METADATA_KEY = "sqlmesh/model"
MODEL_KIND_METADATA_KEY = "sqlmesh/kind"
MODEL_TAG = MODEL_NAME_METADATA_KEY  # the op tag names the model under the same key
PROJECT_TAG = "sqlmesh/project"  # which project a step belongs to, whatever the resource config

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
