"""The one package that owns SQL: tables, migrations, the blob store and named queries, one
module per aggregate (``message_queries``, ``unit_queries``, ``status_queries``, ``job_queries``,
``token_queries``, ``audit_queries``)."""
