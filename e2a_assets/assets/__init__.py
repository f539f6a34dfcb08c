"""Asset modules, one per group: ingestion, orders, exceptions, billing, operations."""
