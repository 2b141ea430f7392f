"""Use cases: what the entry points (CLI, HTTP API, scheduled jobs) call. Each runs its database
work in explicit transactions and takes the composition root (gateway.bootstrap.Gateway)."""
