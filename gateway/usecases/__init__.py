"""Use cases: what the entry points (CLI, HTTP API, scheduled jobs) call. Each runs its database
work in explicit transactions and takes what it uses (gateway.usecases.ports: the store, the
settings, the keys …), which the composition root's ``Gateway`` has; the modules that still take
the whole ``Gateway`` are listed in tests/unit/test_layers.py (STILL_TAKE_GATEWAY)."""
