"""End-to-end tests: a real `dagster dev` (webserver, daemon, code server) and a real browser."""
