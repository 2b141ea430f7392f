"""Runnable stand-ins for counterparties, with fault injection (``axis``: the VXP national axis,
``docgw axis-sim``; ``soap_axis``: a provincial SOAP platform; what both share: ``faults``, the
fault model, and ``common``, systems, flags and request heads). They are test and demo tools,
never a route."""
