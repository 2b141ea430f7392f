"""Runnable stand-ins for counterparties, with fault injection (``axis``: the VXP national axis,
``docgw axis-sim``). They are test and demo tools, never a route."""
