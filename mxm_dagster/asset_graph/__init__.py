"""What the asset graph says of SQLMesh: the names both the definitions and the run side read."""
