"""The warehouse schema package: every table once, and the domain's frames agree with it."""

from e2a_assets.warehouse import schema
from e2a_assets.warehouse.schema import contracts


def test_domain_frames_and_tables_agree():
    assert contracts.mismatches() == []


def test_a_dropped_column_is_reported():
    """The contract check can fail: a domain list that lost a column is named with its table."""
    original = contracts.CONTRACTS
    try:
        first = original[0]
        contracts.CONTRACTS = (contracts.Contract(first.table, first.produced[:-1]), *original[1:])
        assert contracts.mismatches() == [
            f"{first.table.name}.{first.produced[-1]}: declared, but the domain does not produce it"]
    finally:
        contracts.CONTRACTS = original


def test_every_table_is_declared_once_in_one_metadata():
    declared = {t.name for t in schema.metadata.sorted_tables}
    exported = {name for name in schema.__all__ if hasattr(getattr(schema, name), "columns")}
    assert exported == declared
    assert len(declared) == 30
