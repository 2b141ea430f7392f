"""The HTTP API (aiohttp): ``create_app(gateway)`` in :mod:`gateway.web.app` builds it.

app.py       routes and thin handlers: parse the request, call a use case (or a named query
             for reads), render JSON
auth.py      bearer tokens → Principal, and the roles each handler allows
problems.py  every failure as an RFC 9457 problem (application/problem+json) with its code
openapi.py   the OpenAPI 3.1 document, served at GET /api/v1/openapi.json
"""
