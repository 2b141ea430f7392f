"""How a resource module declares its routes — and, with them, its part of the OpenAPI document.

Each module has one :class:`Routes` list, filled by decorators beside its handlers;
``app.create_app`` adds every module's list to the router, and ``openapi.build_document``
generates the document from the same lists (paths, parameters, bodies and responses from the
pydantic models the handlers read and render). A route cannot exist without its documentation,
nor the documentation without its route::

    ROUTES = Routes(tag="units")

    @ROUTES.get(
        f"{API}/units/{{code}}", name="unit", summary="A unit and its certificates",
        parameters=[path_parameter("code")], ok={200: UnitDetail}, errors=(NOT_FOUND,),
    )
    @allow(EVERYONE)
    async def show_unit(request: web.Request) -> web.Response: ...

Every authenticated operation may also answer 400, 401, 403, 431 and 500 (added by the
generator); ``errors`` lists the others it can give. Roles come from the handler's ``allow`` mark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel

#: A response or request body: a pydantic model (application/json), or the OpenAPI ``content``
#: object itself (multipart, binary, text), or None (no body).
BodySpec = type[BaseModel] | Mapping[str, Any] | None

# Problem responses an operation may list in ``errors`` (components/responses of the document).
NOT_FOUND = "NotFound"
CONFLICT = "Conflict"
UNPROCESSABLE = "Unprocessable"
PAYLOAD_TOO_LARGE = "PayloadTooLarge"
UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaType"


@dataclass(frozen=True, kw_only=True)
class Response:
    """A documented answer: its body and what it means."""

    description: str
    body: BodySpec = None
    headers: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Route:
    method: str
    path: str
    name: str
    handler: Handler
    tag: str
    summary: str
    #: Success answers by status: a model (its docstring the description) or a Response.
    ok: Mapping[int, type[BaseModel] | Response]
    errors: tuple[str, ...] = ()
    parameters: Sequence[Mapping[str, Any]] = ()
    body: BodySpec = None
    body_required: bool = True
    body_description: str = ""
    #: Extra words for the description (who may do what), after the roles.
    notes: str = ""

    @property
    def operation_id(self) -> str:
        """camelCase of the route's name: ``register_unit`` → ``registerUnit``."""
        first, *rest = self.name.split("_")
        return first + "".join(word.capitalize() for word in rest)


def query_parameter(
    name: str, description: str = "", schema: Mapping[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": dict(schema or {"type": "string"}),
        **extra,
    }


def path_parameter(
    name: str, description: str = "", schema: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": dict(schema or {"type": "string"}),
    }


def query_names(parameters: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    """The query parameters a route takes: what its handler accepts, from the same list."""
    return frozenset(p["name"] for p in parameters if p["in"] == "query")


class Routes:
    def __init__(self, *, tag: str) -> None:
        self.tag = tag
        self._routes: list[Route] = []

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes)

    def route(self, method: str, path: str, **spec: Any) -> Callable[[Handler], Handler]:
        def add(handler: Handler) -> Handler:
            self._routes.append(
                Route(method=method, path=path, handler=handler, tag=self.tag, **spec)
            )
            return handler

        return add

    def get(self, path: str, **spec: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **spec)

    def post(self, path: str, **spec: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **spec)

    def delete(self, path: str, **spec: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **spec)

    def add_to(self, router: web.UrlDispatcher) -> None:
        for route in self._routes:
            router.add_route(route.method, route.path, route.handler, name=route.name)
