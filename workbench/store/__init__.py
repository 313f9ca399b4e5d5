"""The database (SQLAlchemy 2; SQLite file by default, PostgreSQL by URL) and its tables."""

from workbench.store.engine import Store, mask_url

__all__ = ["Store", "mask_url"]
