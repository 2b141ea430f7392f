"""How a resource module declares its routes: a :class:`Routes` list per module, filled by
decorators next to each handler, added to the app by ``app.create_app``.

    ROUTES = Routes(tag="units")

    @ROUTES.get("/api/v1/units/{code}", name="unit")
    @allow(EVERYONE)
    async def show_unit(request: web.Request) -> web.Response: ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler


@dataclass(frozen=True, kw_only=True)
class Route:
    method: str
    path: str
    name: str
    handler: Handler
    tag: str


class Routes:
    def __init__(self, *, tag: str) -> None:
        self.tag = tag
        self._routes: list[Route] = []

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes)

    def route(self, method: str, path: str, *, name: str) -> Callable[[Handler], Handler]:
        def add(handler: Handler) -> Handler:
            self._routes.append(
                Route(method=method, path=path, name=name, handler=handler, tag=self.tag)
            )
            return handler

        return add

    def get(self, path: str, *, name: str) -> Callable[[Handler], Handler]:
        return self.route("GET", path, name=name)

    def post(self, path: str, *, name: str) -> Callable[[Handler], Handler]:
        return self.route("POST", path, name=name)

    def delete(self, path: str, *, name: str) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, name=name)

    def add_to(self, router: web.UrlDispatcher) -> None:
        for route in self._routes:
            router.add_route(route.method, route.path, route.handler, name=route.name)
