"""Stores: the metadata database (SQLAlchemy Core + Alembic) and content-addressed artifacts."""
