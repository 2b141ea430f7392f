"""The one package that owns SQL: tables, migrations, the blob store and named queries."""
