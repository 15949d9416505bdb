"""What a SQLMesh project is, where its caches and locks live, and what its children are told."""
