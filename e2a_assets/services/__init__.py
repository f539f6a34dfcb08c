"""Dagster-free services: read the warehouse, apply the domain rules; used by assets, checks and the CLI."""
