"""Alembic environment: run on the connection the `Store` hands in, or on a URL from alembic.ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from workbench.store.models import Base

target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("the migrations need a connection or sqlalchemy.url in the alembic config")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
