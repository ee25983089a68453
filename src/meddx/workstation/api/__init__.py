"""HTTP API: routers (one per resource) and their dependencies."""
