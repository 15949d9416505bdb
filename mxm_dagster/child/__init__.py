"""The SQLMesh child processes: the only package that imports SQLMesh."""
