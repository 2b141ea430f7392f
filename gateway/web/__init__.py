"""The HTTP API (aiohttp): ``create_app(gateway)`` in :mod:`gateway.web.app` builds it.

app.py          the app: middlewares, and every resource module's routes
messages.py, inbox.py, units.py, reports.py, integration.py, health.py
                resources: each declares its routes (routes.Routes) beside thin handlers that
                parse the request, call one use case and render JSON
routes.py       Routes: how a module declares its routes and their documentation
common.py       query parameters, body limits and JSON rendering shared by the resources
bodies.py       request/response bodies as pydantic models, refusals as docgw's problems
uploads.py      the submission's multipart body
auth.py         bearer tokens → Principal, and the roles each handler allows
problems.py     every failure as an RFC 9457 problem (application/problem+json) with its code
openapi.py      the OpenAPI 3.1 document, generated from the routes and models, served at
                GET /api/v1/openapi.json
secure_inbox.py the mutual-TLS listener of secure-network peers
"""
