from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from dashboard.extensions import db


def test_migrations_match_the_models():
    """The schema built by `flask db upgrade` is exactly what the models declare."""
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, db.metadata)
    assert diff == []
