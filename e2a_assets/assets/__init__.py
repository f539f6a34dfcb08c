"""Asset modules, one per group: ingestion, orders, exceptions, billing, operations."""

import warnings

import dagster as dg

# Single-run backfill policies are marked beta in Dagster 1.13; e2a relies on them on purpose.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
