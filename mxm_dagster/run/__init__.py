"""In the run worker: the resource that runs SQLMesh once per run, and the events of each step."""
