"""The OpenAPI document is generated from the routes and the models (gateway/web/openapi.py); these
tests fail when the app and the document drift apart: a route the document does not describe (or
the reverse), a success status the handler cannot give (or gives undocumented), a request body
the handler reads with another model than the one documented, a query parameter it refuses."""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from gateway.web import console, openapi
from gateway.web.app import RESOURCES, create_app
from gateway.web.auth import EVERYONE, allow
from gateway.web.health import OPENAPI_JSON
from gateway.web.problems import STATUS_BY_CODE
from gateway.web.routes import Route

ROUTES = [route for routes in RESOURCES for route in routes]


def make_app() -> web.Application:
    # create_app reads the API settings and keeps the gateway for the handlers: nothing runs.
    settings = SimpleNamespace(api=SimpleNamespace(max_upload_bytes=65536, page_size=50))
    return create_app(SimpleNamespace(settings=settings))  # type: ignore[arg-type]


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    """The API's routes: the operator console (HTML for people, a sub-app under /console,
    docs/howto/console.md) is not the API and not in its document."""
    return {
        (openapi.documented_path(route.resource.canonical), route.method.lower())
        for route in app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and not route.resource.canonical.startswith(console.PREFIX + "/")
    }


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


def test_every_route_is_documented_and_every_documented_route_is_served() -> None:
    app = make_app()
    document = json.loads(app[OPENAPI_JSON])
    assert served_routes(app) == documented_routes(document)
    assert len(documented_routes(document)) == len(ROUTES)


def test_a_route_added_past_the_routes_lists_is_caught() -> None:
    """The check above is not vacuous: a handler hooked on the router directly is undocumented."""
    app = make_app()
    document = json.loads(app[OPENAPI_JSON])

    @allow(EVERYONE)
    async def stray(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/api/v1/stray", stray)
    assert served_routes(app) - documented_routes(document) == {("/api/v1/stray", "get")}


def _handler_tree(route: Route) -> ast.FunctionDef | ast.AsyncFunctionDef:
    source = textwrap.dedent(inspect.getsource(route.handler))
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    return node


def _constants(node: ast.expr) -> set[int]:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _constants(node.body) | _constants(node.orelse)
    raise AssertionError(f"a status that is not a literal: {ast.unparse(node)}")


#: What a handler answers with (gateway.web.bodies.render, aiohttp's responses).
ANSWERS = frozenset({"render", "json_response", "Response", "StreamResponse"})


def _called(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    return node.func.attr if isinstance(node.func, ast.Attribute) else None


def success_statuses(route: Route) -> set[int]:
    """The statuses the handler's own answers carry: every ``status=`` it writes, else 200."""
    found: set[int] = set()
    for node in ast.walk(_handler_tree(route)):
        if isinstance(node, ast.Call) and _called(node) in ANSWERS:
            for keyword in node.keywords:
                if keyword.arg == "status":
                    found |= _constants(keyword.value)
    return found or {200}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.operation_id)
def test_documented_success_statuses_are_those_the_handler_gives(route: Route) -> None:
    assert set(route.ok) == success_statuses(route)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.operation_id)
def test_the_documented_body_is_the_one_the_handler_reads(route: Route) -> None:
    read = {
        node.args[1].id
        for node in ast.walk(_handler_tree(route))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "read_body"
        and isinstance(node.args[1], ast.Name)
    }
    documented = getattr(route.body, "__name__", None) if isinstance(route.body, type) else None
    assert read == ({documented} if documented else set())


def test_every_documented_error_status_is_one_the_api_gives() -> None:
    document = json.loads(make_app()[OPENAPI_JSON])
    given = {*STATUS_BY_CODE.values(), 422}
    for item in document["paths"].values():
        for operation in item.values():
            for status in operation["responses"]:
                assert int(status) < 400 or int(status) in given, (operation["operationId"], status)


def test_every_reference_resolves() -> None:
    document = json.loads(make_app()[OPENAPI_JSON])

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(document):
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict), ref
