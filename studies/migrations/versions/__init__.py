"""sweepdoc's migrations, one module per revision (loaded by Alembic, not imported)."""
