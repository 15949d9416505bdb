"""Used by every process: where the project is, locks, names, errors, starting the children."""
