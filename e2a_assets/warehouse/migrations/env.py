"""Alembic environment of the warehouse: migrations run on a connection that `warehouse.migrate`
hands over (its lock already held), with their own version table beside Dagster's `alembic_version`."""

from alembic import context

from e2a_assets.warehouse.migrate import VERSION_TABLE
from e2a_assets.warehouse.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("e2a migrations run through `e2a db upgrade` (e2a_assets.warehouse.migrate), not alone")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    # SQLite alters a table by copying it; batch mode does that for every later migration.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
