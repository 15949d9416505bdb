"""The `dg` defs folder: the justETF reference flow declared through `SQLMeshProjectComponent`."""
